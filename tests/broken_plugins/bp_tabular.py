"""A small working algorithm plugin, and three variants whose state does not survive a checkpoint.

Every agent keeps a table of action scores per observation entry (``obs[i] @ table[i]``); acting
greedily takes the best score, and ``update`` moves the scores of the actions taken towards the
rewards they earned.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

import safenet
from safenet import AlgorithmSpec
from safenet.algorithm import Algorithm

from bp_config import TabularConfig


class _TabularPolicy(Algorithm):
    def __init__(self, spec, cfg: TabularConfig, *, seed: int = 0, device: str = "cpu") -> None:
        super().__init__(spec, cfg, seed=seed, device=device)
        self.rng = np.random.default_rng(seed)
        self.table = self.rng.normal(size=(spec.n, spec.obs_dim, spec.action_dim))

    def act(self, obs: np.ndarray, info: dict, deterministic: bool = False):
        scores = np.einsum("bno,noa->bna", obs, self.table)
        if not deterministic:
            scores = scores + self.rng.gumbel(size=scores.shape)
        return scores.argmax(-1).astype(np.int64), {"score": scores.max(-1)}

    def update(self, rollout) -> dict[str, float]:
        taken = np.eye(self.spec.action_dim)[rollout.actions]                 # [T, B, n, A]
        centred = rollout.reward - rollout.reward.mean()
        step = np.einsum("tbno,tbna,tbn->noa", rollout.obs, taken, centred) / centred.size
        self.table += self.cfg.lr * step
        return {"train/step_norm": float(np.abs(step).sum())}


class TabularGood(_TabularPolicy):
    def state_dict(self) -> dict[str, Any]:
        return {"table": torch.as_tensor(self.table)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.table = state["table"].numpy().copy()


class TabularForgetful(_TabularPolicy):
    """The mistake: no state_dict/load_state_dict, so checkpoints hold nothing."""


class TabularNumpy(_TabularPolicy):
    """The mistake: a numpy array in the state (checkpoints then fail to load with weights_only=True)."""

    def state_dict(self) -> dict[str, Any]:
        return {"table": self.table}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.table = np.array(state["table"])


class TabularHalf(_TabularPolicy):
    """The mistake: the state holds agent 0's table only."""

    def state_dict(self) -> dict[str, Any]:
        return {"table0": torch.as_tensor(self.table[0])}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.table[0] = state["table0"].numpy()


ALGORITHMS = {"tabular-good": "TabularGood", "tabular-forgetful": "TabularForgetful",
              "tabular-numpy": "TabularNumpy", "tabular-half": "TabularHalf"}


@safenet.hookimpl
def safenet_algorithms():
    return [AlgorithmSpec(name=name, factory=f"bp_tabular:{cls}", config=TabularConfig, requires={"discrete"})
            for name, cls in ALGORITHMS.items()]
