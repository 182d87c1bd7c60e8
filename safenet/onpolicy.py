"""On-policy pieces shared by sequential-update PPO algorithms (HAPPO, MAPPO-L, DEC-MAPPO-L, ...).

Complements :mod:`safenet.ppo` (the surrogate, value loss, normaliser) and :mod:`safenet.stacked`
(stacked networks, row-wise Adam):

* :func:`neighbourhood_mean` — the mean of a per-agent signal over each agent's neighbourhood
  (e.g. the κ-hop reward ``r̃_i = mean_{j ∈ N_i^κ} r_j``);
* :func:`normalize_per_agent` — advantage normalisation over samples, separately per agent;
* :class:`EpisodeCostTracker` — per-episode cost sums of every copy across rollouts, for
  Lagrange multiplier steps from measured episode costs;
* :func:`neighbourhood_floats` — the communication bookkeeping of κ-hop gathers;
* :class:`AgentGather` — κ-hop inputs of agent-major tensors ``[n, N, d]`` (the layout of
  :class:`safenet.stacked.StackedMLP`), and sums of a per-agent signal over chosen neighbours
  (the sequential correction factor) through the same ``[n, K]`` index: memory and work grow with
  ``n·K``, never ``n²``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["AgentGather", "EpisodeCostTracker", "neighbourhood_floats", "neighbourhood_mean", "normalize_per_agent"]


# ------------------------------------------------------------------------------------------------
# the sequential scheme, κ-hop signals, normalisation
# ------------------------------------------------------------------------------------------------

def neighbourhood_mean(x: np.ndarray, idx: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x[..., n]`` → ``[..., n]`` with entry ``i`` the mean of ``x`` over the real slots of ``idx[i]``."""
    w = np.asarray(mask, dtype=np.float64)
    return (np.asarray(x, dtype=np.float64)[..., idx] * w).sum(-1) / w.sum(-1)


def normalize_per_agent(adv: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """``adv[S, n, ...]`` standardised over the sample axis, separately for each agent (and column)."""
    return (adv - adv.mean(axis=0, keepdims=True)) / (adv.std(axis=0, keepdims=True) + eps)


def neighbourhood_floats(mask: np.ndarray, floats_per_agent: float) -> float:
    """Floats all agents receive when each reads ``floats_per_agent`` from every *other* member of
    its neighbourhood (``mask`` from :meth:`safenet.graph.Graph.neighbourhood_index`; slot 0 is self)."""
    return float((np.asarray(mask, dtype=bool).sum(1) - 1).clip(min=0).sum() * floats_per_agent)


class EpisodeCostTracker:
    """Per-episode cost sums of ``B`` copies across consecutive rollouts.

    ``add(cost[T, B, n, m], done[T, B])`` returns the totals ``[E, n, m]`` of the episodes that ended
    in this rollout (an episode may have started in an earlier one).
    """

    def __init__(self, num_envs: int, shape: Sequence[int]) -> None:
        self.running = np.zeros((num_envs, *shape))

    def add(self, cost: np.ndarray, done: np.ndarray) -> np.ndarray:
        if cost.shape[1] != self.running.shape[0]:          # another batch size (e.g. after a resume)
            self.running = np.zeros((cost.shape[1], *self.running.shape[1:]))
        ended = []
        for t in range(cost.shape[0]):
            self.running += cost[t]
            for b in np.flatnonzero(done[t]):
                ended.append(self.running[b].copy())
                self.running[b] = 0.0
        return np.stack(ended) if ended else np.zeros((0, *self.running.shape[1:]))

    def state_dict(self) -> dict:
        return {"running": torch.as_tensor(self.running)}

    def load_state_dict(self, state: dict) -> None:
        self.running = np.asarray(state["running"], dtype=np.float64)


class AgentGather:
    """Agent ``i`` reads the agents ``idx[i, :]`` (real where ``mask[i, :]``, self first), agent-major.

    ``idx, mask`` come from :meth:`safenet.graph.Graph.neighbourhood_index`.
    """

    def __init__(self, idx: np.ndarray, mask: np.ndarray, device: torch.device | str = "cpu") -> None:
        idx, mask = np.asarray(idx), np.asarray(mask, dtype=bool)
        self.n, self.k = idx.shape
        self.identity = self.k == 1 and bool(np.array_equal(idx[:, 0], np.arange(self.n)))
        self.idx = torch.tensor(idx, dtype=torch.long, device=device)
        self.mask = torch.tensor(mask, device=device)
        self.weight = self.mask.float()

    def __call__(self, xa: torch.Tensor, agents: torch.Tensor | None = None) -> torch.Tensor:
        """``xa[n, N, d]`` → ``[k, N, K * d]``: row ``i`` of ``agents`` (all when None) holds ``xa`` of
        ``N_i`` slot after slot, padded slots zero."""
        if self.identity:
            return xa if agents is None else xa.index_select(0, agents)
        idx = self.idx if agents is None else self.idx.index_select(0, agents)
        w = self.weight if agents is None else self.weight.index_select(0, agents)
        g = xa[idx] * w.to(xa.dtype)[:, :, None, None]                       # [k, K, N, d]
        return g.permute(0, 2, 1, 3).reshape(idx.shape[0], xa.shape[1], -1)

    def select_sum(self, values: torch.Tensor, select: torch.Tensor, agents: torch.Tensor) -> torch.Tensor:
        """``[k, N]``: for each of ``agents``, the sum of ``values[j]`` (``values[n, N]``) over its slots
        ``j`` where ``select[i, slot]`` (``[n, K]`` bool, a subset of the mask)."""
        idx = self.idx.index_select(0, agents)
        w = select.index_select(0, agents).to(values.dtype)
        return (values[idx] * w[:, :, None]).sum(1)

    def slots_of(self, members: Sequence[Sequence[int]]) -> torch.Tensor:
        """``[n, K]`` bool: slot ``(i, s)`` is real and its agent ``idx[i, s]`` is in ``members[i]``
        (e.g. :attr:`safenet.schedule.UpdatePlan.predecessors`)."""
        idx = self.idx.cpu().numpy()
        mask = self.mask.cpu().numpy()
        sel = np.zeros((self.n, self.k), dtype=bool)
        for i, mem in enumerate(members):
            if len(mem):
                sel[i] = np.isin(idx[i], np.asarray(mem)) & mask[i]
        return torch.as_tensor(sel, device=self.idx.device)
