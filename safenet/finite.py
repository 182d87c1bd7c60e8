"""Find the first nan/inf in what a training iteration produced, and say where it is.

The trainer checks the collected rollout (observations, actions, rewards, costs) and the update's
metrics (losses, λ) every iteration, and the algorithm's whole state (parameters, optimizer state,
normalisers, multipliers) before every checkpoint, so a non-finite value stops the run within the
iteration it appeared in and never reaches a checkpoint.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .rollout import Rollout


def _first_bad(a: np.ndarray) -> tuple[int, ...] | None:
    if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.complexfloating):
        return None
    bad = ~np.isfinite(a)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.argwhere(bad)[0])


def in_rollout(rollout: Rollout, agents: Sequence[str], steps_before: int) -> str | None:
    """Where the rollout first holds a non-finite value (arrays ``[T, B, n, ...]``), or None."""
    B = rollout.reward.shape[1] if rollout.reward.ndim > 1 else 1
    for name, what in (("obs", "observation"), ("actions", "action"), ("reward", "reward"), ("cost", "cost"),
                       ("next_obs", "observation")):
        arr = np.asarray(getattr(rollout, name))
        idx = _first_bad(arr)
        if idx is None:
            continue
        t, b = idx[0], idx[1] if len(idx) > 1 else 0
        agent = agents[idx[2]] if len(idx) > 2 and idx[2] < len(agents) else "?"
        value = arr[idx]
        step = steps_before + (t + (1 if name == "next_obs" else 0)) * B   # env steps taken when it appeared
        return f"{what} {value} of agent {agent} in game copy {b} at env step {step} (rollout step {t})"
    return None


def in_metrics(metrics: Mapping[str, Any]) -> str | None:
    for key, value in metrics.items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(v):
            return f"{key}={v} (from the update)"
    return None


def in_state(state: Any, agents: Sequence[str], prefix: str = "algo") -> str | None:
    """The first non-finite tensor/array/float in a (nested) state dict; with the agent when the
    tensor is stacked over agents (first dimension n)."""
    if isinstance(state, Mapping):
        for k, v in state.items():
            found = in_state(v, agents, f"{prefix}.{k}")
            if found:
                return found
        return None
    if isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            found = in_state(v, agents, f"{prefix}[{i}]")
            if found:
                return found
        return None
    if isinstance(state, torch.Tensor):
        if not state.is_floating_point() or bool(torch.isfinite(state).all()):
            return None
        idx = _first_bad(state.detach().cpu().numpy())
    elif isinstance(state, np.ndarray):
        idx = _first_bad(state)
    elif isinstance(state, float):
        return None if math.isfinite(state) else f"{prefix}={state}"
    else:
        return None
    if idx is None:
        return None
    shape = tuple(state.shape)
    who = f" of agent {agents[idx[0]]}" if len(shape) >= 1 and shape[0] == len(agents) and len(agents) > 1 else ""
    return f"{prefix}{list(idx)}{who}"
