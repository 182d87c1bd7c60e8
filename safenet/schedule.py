"""The sequential κ-hop update scheme.

Sequential-update methods (HAPPO, MAPPO-L) update agents one after another in a random order,
each agent's objective weighted by the probability ratios of the agents updated before it. The
decentralized version (DEC-MAPPO-L) keeps only the already-updated agents inside ``N_i^κ``, and
agents whose κ-hop neighbourhoods cannot interact (graph distance > 2κ) may update in the same
step. :func:`plan_updates` turns ``(graph, κ, rng)`` into such a plan:

1. a random permutation of the agents;
2. a greedy colouring, in that order, of the graph joining agents within distance ``2κ``;
   colour ``c`` is stage ``c`` — agents of one stage update together;
3. for each agent, its *predecessors*: agents in ``N_i^κ`` from earlier stages.

With ``κ >= diameter`` every pair conflicts, each stage holds one agent and the plan is the fully
sequential centralized scheme in a random order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import Graph


@dataclass(frozen=True)
class UpdatePlan:
    """The update order of one iteration."""

    order: tuple[int, ...]                       # agents, stage by stage
    stages: tuple[tuple[int, ...], ...]          # agents updated together, in order
    predecessors: tuple[tuple[int, ...], ...]    # predecessors[i]: updated agents in N_i^κ before i
    stage_of: tuple[int, ...]                    # stage index of each agent

    def predecessor_count(self) -> int:
        """How many (agent, predecessor) pairs the plan has: ``predecessor_mask().sum()`` without the ``n × n``."""
        return sum(len(p) for p in self.predecessors)

    def predecessor_mask(self) -> np.ndarray:
        """``[n, n]`` boolean: ``[i, j]`` true when ``j`` is a predecessor of ``i``."""
        n = len(self.stage_of)
        m = np.zeros((n, n), dtype=bool)
        for i, preds in enumerate(self.predecessors):
            m[i, list(preds)] = True
        return m


def plan_updates(graph: Graph, kappa: int, rng: np.random.Generator | None = None, *,
                 order: np.ndarray | None = None) -> UpdatePlan:
    """Random-order sequential plan restricted to κ-hop neighbourhoods (see module docstring)."""
    n = graph.n
    rng = rng if rng is not None else np.random.default_rng()
    perm = np.asarray(order) if order is not None else rng.permutation(n)
    if sorted(perm.tolist()) != list(range(n)):
        raise ValueError(f"order must be a permutation of 0..{n - 1}")
    # the conflict graph (distance <= 2κ) and N_i^κ as sparse index rows: work grows with n·K, not n²
    c_idx, c_mask = graph.neighbourhood_index(2 * kappa)
    k_idx, k_mask = graph.neighbourhood_index(kappa)
    colour = np.full(n, -1, dtype=np.int64)
    for i in perm:
        others = colour[c_idx[i][c_mask[i]]]
        used = set(others[others >= 0].tolist())
        c = 0
        while c in used:
            c += 1
        colour[i] = c
    n_stages = int(colour.max()) + 1 if n else 0
    # keep the permutation's order inside each stage (a stable sort of the permutation by colour)
    by_stage = perm[np.argsort(colour[perm], kind="stable")]
    bounds = np.searchsorted(colour[by_stage], np.arange(n_stages + 1))
    stages = tuple(tuple(int(i) for i in by_stage[bounds[s]:bounds[s + 1]]) for s in range(n_stages))
    position = np.empty(n, dtype=np.int64)
    position[perm] = np.arange(n)
    preds = []
    for i in range(n):
        nb = k_idx[i][k_mask[i]]
        nb = nb[colour[nb] < colour[i]]
        preds.append(tuple(int(j) for j in nb[np.argsort(position[nb], kind="stable")]))
    return UpdatePlan(order=tuple(i for s in stages for i in s), stages=stages,
                      predecessors=tuple(preds), stage_of=tuple(int(c) for c in colour))
