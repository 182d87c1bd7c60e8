"""MABC's coordinator problem as a finite graph of reachable beliefs, merged on a grid (either channel timing).

The coordinator's belief at decision time ``t`` is ``b = (π, β^0, β^1)``: ``π = P(S_t = idle)``,
``β^j = P(B_t^j = 1)``. It stays a product of these three factors under both channel timings of
:mod:`safenet_teams.mabc`:

* ``after_slot``: the slot's channel is revealed together with the transmissions, so successes are
  seen and each factor is updated on its own (the indexed solver of :mod:`safenet_teams.mabc_solver`
  relies on the same fact);
* ``before_acting``: when someone transmitted in slot ``t``, the next channel ``S_{t+1} = s'`` is
  revealed, so ``π' ∈ {0, 1}``; a sole transmitter's success (``S_t`` idle) is not seen, and its
  buffer becomes ``β' = 1 − σ (1 − p)`` with ``σ = P(S_t = idle | S_{t+1} = s')`` by Bayes' rule
  (``σ = π P[0, s'] / Σ_s P(S_t = s) P[s, s']``). ``S_t`` then matters for nothing else: the channel
  is Markov and known from ``t + 1`` on, and the other buffer does not depend on it.

Reachable beliefs are found breadth-first from the initial belief. Two beliefs whose three
coordinates round to the same multiple of ``merge_tol`` are merged (the first one found stands for
both). Merging only ties together beliefs closer than ``merge_tol`` per coordinate — the converging
tails of "slots since the last reveal" — and the solver's value is checked not to move when
``merge_tol`` is tightened (``docs/reports/dadc.md``). Value iteration on the graph then gives the
infinite-horizon optimum, and ``horizon`` backups from zero the ``horizon``-step optimum.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .mabc import MabcConfig, channel_matrix

#: a common observation: (T^0, T^1, channel shown: 0 idle, 1 busy, -1 none)
ObsKey = tuple[int, int, int]


@dataclass
class BeliefGraph:
    """Reachable beliefs and, per prescription, the probability, expected reward and next belief of each
    common-observation outcome (arrays ``[outcomes, beliefs]``)."""

    beliefs: np.ndarray                         # [N, 3]: (P(idle), P(B^0 = 1), P(B^1 = 1)); row 0 is the start
    prescriptions: tuple[tuple[int, int], ...]
    outcome_keys: list[list[ObsKey]]            # per prescription, the observation of each outcome row
    prob: list[np.ndarray]
    reward: list[np.ndarray]
    next: list[np.ndarray]
    merge_tol: float
    depth: int                                  # BFS layers explored

    @property
    def size(self) -> int:
        return len(self.beliefs)


def initial_belief(cfg: MabcConfig) -> np.ndarray:
    """The package's initial distribution: channel unseen, ``P(idle) = channel_idle_init``; ``B^j ~ Bernoulli(p^j)``."""
    return np.array([cfg.channel_idle_init, cfg.arrival_prob_0, cfg.arrival_prob_1])


def outcomes(cfg: MabcConfig, b: np.ndarray, q: tuple[int, int]) -> list[tuple[ObsKey, np.ndarray, np.ndarray, np.ndarray]]:
    """For beliefs ``b[N, 3]`` and prescription ``q``: ``(observation, prob[N], expected reward[N], next belief[N, 3])``
    of every common observation that ``q`` can produce (see the module docstring for the updates)."""
    P = channel_matrix(cfg)
    p = np.array([cfg.arrival_prob_0, cfg.arrival_prob_1])
    pi = b[:, 0]
    pi_next = pi * P[0, 0] + (1.0 - pi) * P[1, 0]
    before = cfg.channel_timing == "before_acting"
    out = []
    for seen in itertools.product(*[((0, 1) if q[j] else (None,)) for j in range(2)]):
        prob_seen = np.ones_like(pi)
        for j in range(2):
            if seen[j] is not None:
                prob_seen = prob_seen * (b[:, 1 + j] if seen[j] else 1.0 - b[:, 1 + j])
        tx = [int(seen[j] == 1) for j in range(2)]
        n_tx = sum(tx)

        def buffer(j: int, success_prob: np.ndarray) -> np.ndarray:
            if tx[j]:                                   # full before the slot: empties (then may refill) on success
                return 1.0 - success_prob * (1.0 - p[j])
            if seen[j] == 0:                            # known empty before the slot
                return np.full_like(pi, p[j])
            return b[:, 1 + j] + (1.0 - b[:, 1 + j]) * p[j]      # unseen: may have received a packet

        if n_tx == 0:
            nxt = np.stack([pi_next, buffer(0, pi), buffer(1, pi)], axis=1)
            out.append(((0, 0, -1), prob_seen, np.zeros_like(pi), nxt))
            continue
        for s in (0, 1):
            if before:                                  # s is S_{t+1}; success needs S_t idle, not seen
                prob_s = pi * P[0, s] + (1.0 - pi) * P[1, s]
                idle_now = np.divide(pi * P[0, s], prob_s, out=np.zeros_like(pi), where=prob_s > 0)
                pi_new = np.full_like(pi, 1.0 - s)
            else:                                       # s is S_t itself
                prob_s = pi if s == 0 else 1.0 - pi
                idle_now = np.full_like(pi, 1.0 - s)
                pi_new = np.full_like(pi, P[s, 0])
            success = idle_now if n_tx == 1 else np.zeros_like(pi)
            nxt = np.stack([pi_new, buffer(0, success), buffer(1, success)], axis=1)
            reward = -cfg.tx_cost * n_tx + cfg.success_reward * success
            out.append(((tx[0], tx[1], s), prob_seen * prob_s, reward, nxt))
    return out


def build_graph(cfg: MabcConfig, prescriptions: tuple[tuple[int, int], ...], merge_tol: float = 1e-6,
                max_depth: int | None = None, max_beliefs: int = 5_000_000,
                start: np.ndarray | None = None) -> BeliefGraph:
    """Breadth-first search of the beliefs reachable from ``start`` (default :func:`initial_belief`), merged on a
    ``merge_tol`` grid. ``max_depth`` stops after that many layers (enough for a ``max_depth``-step problem)."""
    if not 0.0 < merge_tol < 1e-3:
        raise ValueError(f"merge_tol must be in (0, 1e-3), got {merge_tol}")
    start = initial_belief(cfg) if start is None else np.asarray(start, dtype=np.float64)
    if start.shape != (3,) or not ((start >= 0) & (start <= 1)).all():
        raise ValueError(f"start must be 3 probabilities (P(idle), P(B^0 = 1), P(B^1 = 1)), got {start}")
    index: dict[tuple[int, int, int], int] = {tuple(np.round(start / merge_tol).astype(np.int64).tolist()): 0}
    first_outs = [outcomes(cfg, start[None, :], q) for q in prescriptions]
    keys: list[list[ObsKey]] = [[o[0] for o in outs] for outs in first_outs]
    chunks: list[list[list[np.ndarray]]] = [[[], [], []] for _ in prescriptions]   # prob, reward, next per q
    frontier, layers, depth = start[None, :], [start[None, :]], 0
    while len(frontier):
        expand = max_depth is None or depth < max_depth
        new: list[np.ndarray] = []
        for a, q in enumerate(prescriptions):
            outs = outcomes(cfg, frontier, q)
            prob = np.stack([o[1] for o in outs]) if expand else np.zeros((len(outs), len(frontier)))
            rew = np.stack([o[2] for o in outs])
            nxt_idx = np.zeros((len(outs), len(frontier)), dtype=np.int64)
            for k, (_, pr, _, nb) in enumerate(outs if expand else ()):
                live = np.flatnonzero(pr > 0)
                cells, first, inverse = np.unique(np.round(nb[live] / merge_tol).astype(np.int64), axis=0,
                                                  return_index=True, return_inverse=True)
                ids = np.empty(len(cells), dtype=np.int64)
                for c, (cell, f) in enumerate(zip(map(tuple, cells.tolist()), first.tolist())):
                    i = index.get(cell)
                    if i is None:
                        i = index[cell] = len(index)
                        new.append(nb[live[f]])
                    ids[c] = i
                nxt_idx[k, live] = ids[inverse.ravel()]
            for lst, arr in zip(chunks[a], (prob, rew, nxt_idx)):
                lst.append(arr)
        if len(index) > max_beliefs:
            raise RuntimeError(f"more than {max_beliefs} reachable beliefs at merge_tol={merge_tol}; use a coarser one")
        frontier = np.stack(new) if new else np.empty((0, 3))
        layers.append(frontier)
        depth += 1
    return BeliefGraph(beliefs=np.concatenate(layers), prescriptions=tuple(prescriptions), outcome_keys=keys,
                       prob=[np.concatenate(c[0], axis=1) for c in chunks],
                       reward=[np.concatenate(c[1], axis=1) for c in chunks],
                       next=[np.concatenate(c[2], axis=1) for c in chunks], merge_tol=merge_tol, depth=depth)


def backup(graph: BeliefGraph, V: np.ndarray, gamma: float) -> np.ndarray:
    """``Q[a, b] = Σ_outcomes prob (reward + γ V[next])``."""
    return np.stack([np.einsum("kn,kn->n", pr, rw + gamma * V[nx])
                     for pr, rw, nx in zip(graph.prob, graph.reward, graph.next)])


class GraphBeliefTracker:
    """Follows the belief of ``B`` copies of :class:`~safenet_teams.mabc.MabcGame` through the graph, from the
    prescriptions used and the env's ``common_obs`` rows ``(T^0, T^1, seen idle, seen busy)``."""

    def __init__(self, graph: BeliefGraph, num_envs: int) -> None:
        self.graph = graph
        self.index = np.zeros(num_envs, dtype=np.int64)
        self._slot = [{key: k for k, key in enumerate(keys)} for keys in graph.outcome_keys]

    def update(self, action: np.ndarray, common_obs: np.ndarray) -> None:
        """``action[B]`` the prescription index used, ``common_obs[B, 4]`` the observation that followed."""
        obs = np.rint(common_obs).astype(np.int64)
        shown = np.where(obs[:, 2] == 1, 0, np.where(obs[:, 3] == 1, 1, -1))
        for i, (a, key) in enumerate(zip(action.tolist(), zip(obs[:, 0].tolist(), obs[:, 1].tolist(), shown.tolist()))):
            self.index[i] = self.graph.next[a][self._slot[a][key], self.index[i]]

    def reset(self, mask: np.ndarray) -> None:
        self.index[mask] = 0
