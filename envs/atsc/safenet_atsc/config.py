"""Config keys of the ATSC grid (the ``env.*`` section) and of the classic controllers (``algo.*``).

This module imports nothing heavy: the plugin module reads it to register the names.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, List

from safenet.errors import ConfigError

#: The five signal phases of every intersection (see ``signals.py`` for the links each one opens).
PHASE_NAMES = ("NS-through", "EW-left", "EW-through", "E-all", "W-all")
#: Per-episode limit on the spill-back cost of each intersection (decisions with a spilled lane).
DEFAULT_COST_LIMIT = 20.0


def default_cache_dir() -> str:
    """``$SAFENET_ATSC_CACHE``, else ``$XDG_CACHE_HOME/safenet-atsc``, else ``~/.cache/safenet-atsc``."""
    if os.environ.get("SAFENET_ATSC_CACHE"):
        return os.environ["SAFENET_ATSC_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "safenet-atsc")


@dataclass
class AtscConfig:
    """The ``env.*`` keys of ``atsc_grid_<R>x<C>`` (defaults: the 5×5 benchmark)."""

    rows: int = 5                       # intersections per column (north-south)
    cols: int = 5                       # intersections per row (east-west)
    edge_length: float = 200.0          # m between neighbouring intersections (and to the fringe)
    speed_limit: float = 13.89          # m/s (50 km/h)
    episode_s: int = 3600               # simulated seconds per episode
    control_interval_s: int = 5         # seconds per decision
    yellow_s: int = 2                   # yellow inserted at the start of a decision whose phase changed
    peak_flow_major: float = 1100.0     # peak veh/h of each of the two OD groups starting at 0 min
    peak_flow_minor: float = 925.0      # peak veh/h of each of the two OD groups starting at 15 min
    demand_scale: float = 1.0           # multiplies every flow
    demand_end_s: int = 3000            # no new vehicles after this time (end of the last 5-min slot kept)
    time_to_teleport: int = 600         # SUMO --time-to-teleport (s a vehicle may stand before it is teleported)
    spill_back_fraction: float = 0.8    # a lane spills back when its halting vehicles reach this share of its capacity
    cost_limit: float = DEFAULT_COST_LIMIT  # per-intersection limit on spill-back decisions per episode
    obs_phase: bool = True              # append the current phase (one-hot) to the 12 lane counts
    cache_dir: str = ""                 # where generated networks and demand go ("" = default_cache_dir())

    def __post_init__(self) -> None:
        validate_config(self)

    @property
    def decisions(self) -> int:
        return self.episode_s // self.control_interval_s


def _fail(key: str, message: str) -> None:
    raise ConfigError(f"env.{key}: {message}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def validate_config(cfg: AtscConfig) -> None:
    """Check every key; raises :class:`~safenet.errors.ConfigError` naming the bad key."""
    for key, low in (("rows", 1), ("cols", 1), ("episode_s", 1), ("control_interval_s", 1), ("yellow_s", 0),
                     ("demand_end_s", 0), ("time_to_teleport", -1)):
        v = getattr(cfg, key)
        if not _is_int(v) or v < low:
            _fail(key, f"must be an integer >= {low}, got {v!r}")
    if cfg.rows * cfg.cols < 2:
        _fail("rows", f"the grid needs at least 2 intersections, got {cfg.rows}x{cfg.cols}")
    if cfg.yellow_s >= cfg.control_interval_s:
        _fail("yellow_s", f"must be shorter than control_interval_s ({cfg.control_interval_s}), got {cfg.yellow_s}")
    if cfg.episode_s % cfg.control_interval_s:
        _fail("episode_s", f"must be a multiple of control_interval_s ({cfg.control_interval_s}), got {cfg.episode_s}")
    for key in ("edge_length", "speed_limit"):
        v = getattr(cfg, key)
        if not _is_number(v) or v <= 0:
            _fail(key, f"must be a number > 0, got {v!r}")
    if cfg.edge_length < 50:
        _fail("edge_length", f"must be at least 50 m (vehicles need room to change lanes), got {cfg.edge_length}")
    for key in ("peak_flow_major", "peak_flow_minor", "demand_scale", "cost_limit"):
        v = getattr(cfg, key)
        if not _is_number(v) or v < 0:
            _fail(key, f"must be a number >= 0, got {v!r}")
    if not _is_number(cfg.spill_back_fraction) or not 0 < cfg.spill_back_fraction <= 1:
        _fail("spill_back_fraction", f"must be in (0, 1], got {cfg.spill_back_fraction!r}")
    if not isinstance(cfg.obs_phase, bool):
        _fail("obs_phase", f"must be true or false, got {cfg.obs_phase!r}")
    if not isinstance(cfg.cache_dir, str):
        _fail("cache_dir", f"must be a path, got {cfg.cache_dir!r}")


def config_from(cfg: Any) -> AtscConfig:
    """An :class:`AtscConfig` from ``None``, an instance, or a mapping (unknown keys refused)."""
    if cfg is None:
        return AtscConfig()
    if isinstance(cfg, AtscConfig):
        validate_config(cfg)
        return cfg
    values = dict(cfg)
    names = {f.name for f in fields(AtscConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown ATSC config keys {unknown}; valid keys: {', '.join(sorted(names))}")
    return AtscConfig(**values)


# ------------------------------------------------------------------------------------------------
# Classic controllers (algorithms that do not learn)
# ------------------------------------------------------------------------------------------------

@dataclass
class FixedTimeConfig:
    """``algo.*`` of ``fixed-time``: the cyclic plan of the network's static programme."""

    #: decisions (control intervals) each phase is held per cycle, in phase order (0 skips a phase)
    plan: List[int] = field(default_factory=lambda: [6, 2, 4, 2, 2])
    offset: int = 0                     # decisions the cycle is shifted by (the same at every intersection)

    def __post_init__(self) -> None:
        plan = list(self.plan)
        if len(plan) != len(PHASE_NAMES) or any(not _is_int(k) or k < 0 for k in plan) or sum(plan) == 0:
            raise ConfigError(f"algo.plan must list {len(PHASE_NAMES)} integers >= 0 (decisions per phase "
                              f"{', '.join(PHASE_NAMES)}), not all 0; got {plan!r}")
        if not _is_int(self.offset) or self.offset < 0:
            raise ConfigError(f"algo.offset must be an integer >= 0, got {self.offset!r}")


@dataclass
class MaxPressureConfig:
    """``algo.*`` of ``max-pressure``: each decision, the phase with the largest pressure."""

    min_green: int = 1                  # decisions a phase is held at least before it may change

    def __post_init__(self) -> None:
        if not _is_int(self.min_green) or self.min_green < 1:
            raise ConfigError(f"algo.min_green must be an integer >= 1, got {self.min_green!r}")
