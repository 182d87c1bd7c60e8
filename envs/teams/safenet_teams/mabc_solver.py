"""Exact optimal value of multi-access broadcast: value iteration over the coordinator's belief.

This module's indexed belief space solves the ``after_slot`` channel timing (the channel of a slot
is revealed after it). :func:`solve_mabc` solves ``before_acting`` (and, as a cross-check,
``after_slot``) on the merged belief graph of :mod:`safenet_teams.mabc_belief_graph`.

Method (the common-information approach, Nayyar, Mahajan & Teneketzis 2013)
---------------------------------------------------------------------------
A virtual coordinator sees the common information (past realised transmissions of both
transmitters, the channel state of slots in which someone transmitted) and chooses a prescription
for each transmitter: a map from its buffer to an action. A transmitter with an empty buffer cannot
send anything, so a deterministic prescription is one bit per transmitter, ``q^j`` = "transmit if
you have a packet": 4 prescriptions (class ``all``); the paper's learner uses 3 of them (class
``paper``: no silence), whose optimum :func:`solve_mabc` also gives. Deterministic prescriptions suffice: the problem is a team
(Dec-POMDP) problem, for which deterministic policies are optimal, so this value is the team optimum.

The coordinator's belief on ``(S_t, B_t^0, B_t^1)`` factorises into ``π = P(S_t = idle)`` and
``β^j = P(B_t^j = 1)`` (arrivals and channel are independent, and the common observations reveal
each factor separately). Every reachable belief is indexed by integers:

* channel ``(ref, m)``: the last revealed state ``ref ∈ {idle, busy}`` was ``m`` slots ago
  (``π = (e_ref P^m)[idle]``), or nothing was revealed yet (``ref = init``, ``π = (μ_0 P^m)[idle]``);
* buffer ``u``: 0 when the buffer is known full, else ``β = 1 - (1 - p^j)^u`` (``u`` slots of
  possible arrivals since it was known empty; ``u = 1`` is the initial belief ``β = p^j``).

Indices are capped where the belief has converged (successive beliefs closer than ``1e-13``), so
the truncation error is below ``1e-12 / (1 - γ)``. Value iteration on this finite set gives the
infinite-horizon optimum ``V*(b_0)``; ``horizon`` steps of the same backup from ``V = 0`` give the
optimum of the ``horizon``-step discounted problem (what an episode of that length measures).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .mabc import MabcConfig, channel_matrix

if TYPE_CHECKING:
    from .mabc_belief_graph import BeliefGraph

#: The deterministic prescriptions ``(q^0, q^1)``: transmitter ``j`` transmits iff it has a packet and ``q^j = 1``.
PRESCRIPTIONS = ((0, 0), (1, 0), (0, 1), (1, 1))
_CONVERGED = 1e-13


#: Prescription classes: ``all`` the four above; ``paper`` the three of the paper's learner (appendix E.1:
#: transmitter 1 may send, transmitter 2 may, both may; silence is not a choice).
PRESCRIPTION_CLASSES = {"all": PRESCRIPTIONS, "paper": ((1, 0), (0, 1), (1, 1))}
#: Solution methods: ``indexed`` (this module, ``after_slot`` only), ``graph`` (:mod:`safenet_teams.mabc_belief_graph`).
METHODS = ("auto", "indexed", "graph")


@dataclass
class MabcSolution:
    value: float                   # infinite-horizon optimal discounted value from the initial belief
    horizon_value: float | None    # optimal value of the `horizon`-step problem (None when not asked)
    horizon: int | None
    gamma: float
    iterations: int
    n_beliefs: int
    initial_prescription: tuple[int, int]
    prescriptions: tuple[tuple[int, int], ...] = PRESCRIPTIONS
    channel_timing: str = "after_slot"
    method: str = "indexed"
    merge_tol: float | None = None             # graph method: beliefs closer than this per coordinate are merged
    values: np.ndarray = field(repr=False, default=None)
    policy: np.ndarray = field(repr=False, default=None)     # index into `prescriptions` per belief
    space: "BeliefSpace | BeliefGraph" = field(repr=False, default=None)


def _cap(seq_fn, max_len: int = 10_000) -> int:
    """Smallest m with |seq(m+1) - seq(m)| < _CONVERGED (seq_fn vectorised over m)."""
    m = np.arange(max_len)
    d = np.abs(seq_fn(m + 1) - seq_fn(m))
    ok = np.flatnonzero(d < _CONVERGED)
    return int(ok[0]) if len(ok) else max_len - 1


class BeliefSpace:
    """The reachable coordinator beliefs of MABC, flattened to indices (see the module docstring)."""

    def __init__(self, cfg: MabcConfig) -> None:
        self.cfg = cfg
        P = channel_matrix(cfg)
        mu0 = np.array([cfg.channel_idle_init, 1.0 - cfg.channel_idle_init])
        starts = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), mu0]        # ref = idle, busy, init

        lam = P[0, 0] + P[1, 1] - 1.0
        if lam <= -1.0 + 1e-12:
            raise ValueError("the exact MABC solver needs a channel that is not periodic (alpha0 = alpha1 = 0)")

        def chan_seq(ref: int, m: np.ndarray) -> np.ndarray:
            # (start P^m)[idle] via the eigen-decomposition of the 2-state chain
            stat_idle = (1 - P[1, 1]) / (2 - P[0, 0] - P[1, 1]) if lam != 1.0 else starts[ref][0]
            return stat_idle + (starts[ref][0] - stat_idle) * np.power(lam, m.astype(np.float64))

        self.m_cap = max(1, max(_cap(lambda m, r=r: chan_seq(r, m)) for r in range(3)))
        self.pi = np.array([[chan_seq(r, np.array([m]))[0] for m in range(self.m_cap + 1)] for r in range(3)])
        self.p = np.array([cfg.arrival_prob_0, cfg.arrival_prob_1])
        self.u_cap = []
        self.beta = []
        for p in self.p:
            seq = lambda u, p=p: np.where(u == 0, 1.0, 1.0 - np.power(1.0 - p, u.astype(np.float64)))
            cap = 1 + _cap(lambda u, s=seq: s(u + 1))
            self.u_cap.append(cap)
            self.beta.append(seq(np.arange(cap + 1)))
        self.shape = (3, self.m_cap + 1, self.u_cap[0] + 1, self.u_cap[1] + 1)
        self.size = int(np.prod(self.shape))
        self.initial = self.index(2, 0, 1, 1)

    def index(self, ref, m, u0, u1):
        return np.ravel_multi_index((ref, np.minimum(m, self.m_cap), np.minimum(u0, self.u_cap[0]),
                                     np.minimum(u1, self.u_cap[1])), self.shape)

    def belief(self, idx: int) -> tuple[float, float, float]:
        """``(P(idle), P(B^0 = 1), P(B^1 = 1))`` of a belief index."""
        ref, m, u0, u1 = np.unravel_index(idx, self.shape)
        return float(self.pi[ref, m]), float(self.beta[0][u0]), float(self.beta[1][u1])


def _outcomes(space: BeliefSpace, q: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For prescription ``q``: ``(prob[S], reward[S], next_index[S])`` per common-observation outcome."""
    cfg = space.cfg
    ref, m, u0, u1 = (a.ravel() for a in np.meshgrid(*(np.arange(k) for k in space.shape), indexing="ij"))
    u = (u0, u1)
    pi = space.pi[ref, m]
    beta = (space.beta[0][u0], space.beta[1][u1])

    def silent(j: int) -> np.ndarray:        # u' of a buffer the coordinator learnt nothing about
        return np.where(u[j] == 0, 0, u[j] + 1)

    out = []
    choices = [((0, 1) if q[j] else (None,)) for j in range(2)]      # buffer outcome seen (q=1) or unseen
    for b in itertools.product(*choices):
        prob_b = np.ones_like(pi)
        for j in range(2):
            if b[j] is not None:
                prob_b = prob_b * (beta[j] if b[j] else 1.0 - beta[j])
        tx = [int(q[j] and b[j] == 1) for j in range(2)]
        n_tx = sum(tx)
        if n_tx == 0:
            nu = [np.full_like(u[j], 1) if b[j] == 0 else silent(j) for j in range(2)]
            out.append((prob_b, np.zeros_like(pi), space.index(ref, m + 1, nu[0], nu[1])))
            continue
        for s in (0, 1):                                                 # channel revealed
            success = n_tx == 1 and s == 0
            nu = []
            for j in range(2):
                if tx[j]:
                    nu.append(np.full_like(u[j], 1 if success else 0))
                elif b[j] == 0:
                    nu.append(np.full_like(u[j], 1))
                else:
                    nu.append(silent(j))
            prob = prob_b * (pi if s == 0 else 1.0 - pi)
            reward = np.full_like(pi, -cfg.tx_cost * n_tx + cfg.success_reward * success)
            out.append((prob, reward, space.index(np.full_like(ref, s), np.ones_like(m), nu[0], nu[1])))
    return out


def _backup(tables, V: np.ndarray, gamma: float) -> np.ndarray:
    """``Q[a, b] = Σ_outcomes prob (reward + γ V[next])``."""
    return np.stack([sum(p * (r + gamma * V[nx]) for p, r, nx in outs) for outs in tables])


def solve_mabc(cfg: MabcConfig | None = None, gamma: float = 0.9, horizon: int | None = None,
               tol: float = 1e-10, max_iterations: int = 100_000, infinite: bool = True,
               prescriptions: str = "all", method: str = "auto", merge_tol: float = 1e-6,
               start: tuple[float, float, float] | None = None) -> MabcSolution:
    """Optimal discounted team value of MABC under ``cfg.channel_timing`` for the prescription class
    ``prescriptions`` (a key of :data:`PRESCRIPTION_CLASSES`).

    ``method="auto"`` uses the indexed belief space of this module for ``after_slot`` and the merged belief
    graph (:mod:`safenet_teams.mabc_belief_graph`, grid ``merge_tol``) for ``before_acting``.
    ``infinite=False`` skips the infinite-horizon value iteration (``value`` is then NaN; the graph is then
    explored only ``horizon`` steps deep). ``start = (P(idle), P(B^0 = 1), P(B^1 = 1))`` replaces the package's
    initial distribution (graph method only)."""
    cfg = MabcConfig() if cfg is None else cfg
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must be in [0, 1), got {gamma}")
    if prescriptions not in PRESCRIPTION_CLASSES:
        raise ValueError(f"prescriptions must be one of {', '.join(PRESCRIPTION_CLASSES)}, got {prescriptions!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not infinite and horizon is None:
        raise ValueError("infinite=False needs a horizon")
    if start is not None and method == "auto":
        method = "graph"
    if method == "auto":
        method = "indexed" if cfg.channel_timing == "after_slot" else "graph"
    if start is not None and method != "graph":
        raise ValueError("another initial belief (start) needs method='graph'")
    if method == "indexed" and cfg.channel_timing != "after_slot":
        raise ValueError(f"the indexed method solves channel_timing=after_slot only, not {cfg.channel_timing!r}; "
                         "use method='graph'")
    qs = PRESCRIPTION_CLASSES[prescriptions]
    if method == "indexed":
        space = BeliefSpace(cfg)
        tables = [_outcomes(space, q) for q in qs]
        size, root = space.size, int(space.initial)

        def backup(V: np.ndarray) -> np.ndarray:
            return _backup(tables, V, gamma)
    else:
        from .mabc_belief_graph import backup as graph_backup, build_graph

        space = build_graph(cfg, qs, merge_tol, max_depth=None if infinite else horizon,
                            start=None if start is None else np.asarray(start, dtype=np.float64))
        size, root = space.size, 0

        def backup(V: np.ndarray) -> np.ndarray:
            return graph_backup(space, V, gamma)
    V = np.zeros(size)
    it = 0
    # stop when the sup-norm change guarantees |V - V*| <= tol
    for it in range(1, max_iterations + 1 if infinite else 1):
        V_new = backup(V).max(0)
        delta = float(np.abs(V_new - V).max())
        V = V_new
        if delta * gamma / (1.0 - gamma) <= tol:
            break
    policy = backup(V).argmax(0)
    horizon_value = None
    if horizon is not None:
        W = np.zeros(size)
        for _ in range(int(horizon)):
            W = backup(W).max(0)
        horizon_value = float(W[root])
    return MabcSolution(value=float(V[root]) if infinite else float("nan"), horizon_value=horizon_value,
                        horizon=horizon, gamma=gamma, iterations=it, n_beliefs=size,
                        initial_prescription=qs[int(policy[root])], prescriptions=qs,
                        channel_timing=cfg.channel_timing, method=method,
                        merge_tol=merge_tol if method == "graph" else None, values=V, policy=policy, space=space)


class BeliefTracker:
    """Follows the belief index of ``B`` copies from the common observations of :class:`~safenet_teams.mabc.MabcGame`
    (``common_obs`` rows ``(T^0, T^1, seen idle, seen busy)``) and the prescriptions used."""

    def __init__(self, space: BeliefSpace, num_envs: int) -> None:
        self.space = space
        self.ref = np.full(num_envs, 2)
        self.m = np.zeros(num_envs, dtype=np.int64)
        self.u = np.ones((num_envs, 2), dtype=np.int64)

    @property
    def index(self) -> np.ndarray:
        return self.space.index(self.ref, self.m, self.u[:, 0], self.u[:, 1])

    def update(self, q: np.ndarray, common_obs: np.ndarray) -> None:
        """``q[B, 2]`` the prescription bits used, ``common_obs[B, 4]`` what was learnt in that slot."""
        tx = common_obs[:, :2] > 0.5
        seen = common_obs[:, 2:].max(1) > 0.5
        success = seen & (common_obs[:, 2] > 0.5) & (tx.sum(1) == 1)
        for j in range(2):
            silent = np.where(self.u[:, j] == 0, 0, self.u[:, j] + 1)
            known_empty = (q[:, j] == 1) & ~tx[:, j]
            new = np.where(tx[:, j], np.where(success, 1, 0), np.where(known_empty, 1, silent))
            self.u[:, j] = np.minimum(new, self.space.u_cap[j])
        self.ref = np.where(seen, np.where(common_obs[:, 2] > 0.5, 0, 1), self.ref)
        self.m = np.minimum(np.where(seen, 1, self.m + 1), self.space.m_cap)

    def reset(self, mask: np.ndarray) -> None:
        self.ref[mask], self.m[mask], self.u[mask] = 2, 0, 1
