"""The algorithm interface every algorithm plugin implements."""
from __future__ import annotations

import abc
from typing import Any

import numpy as np

from .copies import CopyRNG
from .game import GameSpec
from .rollout import Rollout


class Algorithm(abc.ABC):
    """A learner for a :class:`~safenet.game.GameSpec`.

    The trainer drives it: ``act`` on every step of collection, ``update`` once per iteration with
    the collected :class:`~safenet.rollout.Rollout`, ``state_dict``/``load_state_dict`` for
    checkpoints. Everything ``act`` returns in ``extras`` (arrays ``[B, n, ...]``) is stored in the
    rollout under the same key (e.g. log-probabilities, values).

    ``device`` is ``trainer.device`` as a string (``"cpu"``, ``"cuda:0"``, ...), already checked
    against the machine and against the device types the algorithm's spec lists in
    :attr:`~safenet.specs.AlgorithmSpec.devices`; parameters, optimizer state and updates belong there.
    """

    #: Steps per game copy per iteration when ``trainer.rollout_steps`` is 0.
    rollout_steps: int = 128
    #: True when ``update`` needs rollouts made of whole episodes (the trainer then refuses a
    #: ``trainer.rollout_steps`` that is not a multiple of the episode length).
    needs_whole_episodes: bool = False
    #: True when ``act`` draws its action noise from :attr:`copy_streams` (one generator per game copy,
    #: :mod:`safenet.copies`) whenever it is set and its copies match the batch; such an algorithm's
    #: rollouts can be collected by ``trainer.workers`` rollout workers, bit for bit as in one process.
    per_copy_sampling: bool = False
    #: set by the trainer (or a rollout worker) for algorithms with :attr:`per_copy_sampling`
    copy_streams: "CopyRNG | None" = None

    def __init__(self, spec: GameSpec, cfg: Any, *, seed: int = 0, device: str = "cpu") -> None:
        self.spec = spec
        self.cfg = cfg
        self.seed = seed
        self.device = device

    @abc.abstractmethod
    def act(self, obs: np.ndarray, info: dict, deterministic: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Actions for a batch ``obs[B, n, o]`` (``info`` is the game's latest info dict)."""

    @abc.abstractmethod
    def update(self, rollout: Rollout) -> dict[str, float]:
        """Learn from one iteration's rollout; return scalar metrics (``train/...`` keys)."""

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only (checkpoints load with ``torch.load(weights_only=True)``)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def communication(self) -> dict[str, float]:
        """Floats exchanged between agents: ``{"floats_per_step": .., "floats_per_update": ..}``."""
        return {}
