"""Config validation shared by the team games: every error names the bad key and what is allowed."""
from __future__ import annotations

from typing import Any

import numpy as np

from safenet.errors import ConfigError


def fail(key: str, message: str) -> None:
    raise ConfigError(f"env.{key}: {message}")


def is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)) and bool(np.isfinite(v))


def check_int(cfg: Any, key: str, low: int) -> None:
    v = getattr(cfg, key)
    if not is_int(v) or v < low:
        fail(key, f"must be an integer >= {low}, got {v!r}")


def check_probability(cfg: Any, key: str, *, open_low: bool = False, open_high: bool = False) -> None:
    v = getattr(cfg, key)
    lo, hi = ("(0" if open_low else "[0"), ("1)" if open_high else "1]")
    ok = is_number(v) and (v > 0 if open_low else v >= 0) and (v < 1 if open_high else v <= 1)
    if not ok:
        fail(key, f"must be a probability in {lo}, {hi}, got {v!r}")


def check_nonnegative(cfg: Any, key: str) -> None:
    v = getattr(cfg, key)
    if not is_number(v) or v < 0:
        fail(key, f"must be a number >= 0, got {v!r}")


def check_num_envs(num_envs: Any) -> int:
    from safenet.errors import SafenetError

    if not is_int(num_envs) or num_envs < 1:
        raise SafenetError(f"num_envs must be a positive integer, got {num_envs!r}")
    return int(num_envs)
