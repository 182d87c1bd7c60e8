"""Classic signal controllers as safenet algorithms that do not learn: ``fixed-time`` and ``max-pressure``.

They run through the trainer like any learner (``safenet train --algo max-pressure --env
atsc_grid_5x5``), so their episodes are logged in the same format and ``safenet plot`` draws them
next to learned policies. Both need the ``traffic_signals`` tag: the game's ``info`` carries
``decision``, ``phase``, ``phase_age`` and ``pressure`` (see ``game.py``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from safenet.algorithm import Algorithm
from safenet.errors import SafenetError
from safenet.game import GameSpec
from safenet.rollout import Rollout

from .config import FixedTimeConfig


def _need(info: dict, keys: tuple[str, ...], who: str) -> None:
    missing = [k for k in keys if k not in info]
    if missing:
        raise SafenetError(f"{who} needs info keys {missing} from the game (an ATSC grid game provides them)")


class _Controller(Algorithm):
    """No parameters, no learning: one iteration is one episode per copy."""

    def __init__(self, spec: GameSpec, cfg: Any, *, seed: int = 0, device: str = "cpu") -> None:
        super().__init__(spec, cfg, seed=seed, device=device)
        self.rollout_steps = spec.episode_length

    def update(self, rollout: Rollout) -> dict[str, float]:
        return {}

    def communication(self) -> dict[str, float]:
        return {"floats_per_step": 0.0, "floats_per_update": 0.0}


class FixedTime(_Controller):
    """The network's static programme: every intersection cycles through the phases, holding phase
    ``p`` for ``plan[p]`` decisions (the game inserts the yellow), shifted by ``offset`` decisions."""

    def __init__(self, spec: GameSpec, cfg: FixedTimeConfig, *, seed: int = 0, device: str = "cpu") -> None:
        super().__init__(spec, cfg, seed=seed, device=device)
        if len(cfg.plan) != spec.action_dim:
            raise SafenetError(f"algo.plan has {len(cfg.plan)} entries but the game has {spec.action_dim} phases")
        self.schedule = np.repeat(np.arange(len(cfg.plan)), list(cfg.plan))     # phase of each decision of a cycle

    def act(self, obs: np.ndarray, info: dict, deterministic: bool = False) -> tuple[np.ndarray, dict]:
        _need(info, ("decision",), "fixed-time")
        k = (np.asarray(info["decision"], dtype=np.int64) + int(self.cfg.offset)) % len(self.schedule)   # [B]
        actions = np.repeat(self.schedule[k][:, None], self.spec.n, axis=1)
        return actions, {}


class MaxPressure(_Controller):
    """Each decision, every intersection shows the phase of largest pressure (vehicles on the green
    links' incoming lanes minus those on their outgoing lanes), once its current phase has been shown
    for ``min_green`` decisions; ties keep the current phase."""

    def act(self, obs: np.ndarray, info: dict, deterministic: bool = False) -> tuple[np.ndarray, dict]:
        _need(info, ("pressure", "phase", "phase_age"), "max-pressure")
        pressure = np.asarray(info["pressure"], dtype=np.float64)                  # [B, n, P]
        phase = np.asarray(info["phase"], dtype=np.int64)                          # [B, n]
        best = pressure.argmax(axis=-1)
        current = np.take_along_axis(pressure, phase[..., None], axis=-1)[..., 0]
        best = np.where(pressure.max(axis=-1) > current, best, phase)              # ties keep the phase
        age = np.asarray(info["phase_age"])                                       # 0 only when an episode starts
        may_change = (age == 0) | (age >= int(self.cfg.min_green))
        return np.where(may_change, best, phase), {}
