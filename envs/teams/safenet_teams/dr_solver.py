"""Exact optimal value of demand response: a dynamic program on the number of devices ON.

Method (mean-field teams, Arabneydi & Mahajan 2014)
---------------------------------------------------
The coordinator sees the mean field ``M_t``, i.e. ``k_t`` = devices ON, and gives every device the
same prescription ``h = (h_0, h_1)``: ``h_s`` is the distribution over (natural, force OFF, force ON)
a device in state ``s`` samples its action from, privately. Given ``k`` and ``h``, devices move
independently, so ``k' = Bin(k, p_1) + Bin(n - k, p_0)`` with ``p_s = Σ_a h_s(a) P(ON | s, a)``, and
the expected reward is ``-[((n - k) h_0·c + k h_1·c) / n + KL(M_k ‖ ζ)]``. This is an exact finite MDP
on ``k ∈ {0..n}`` for identical prescriptions (for finite ``n``; no mean-field limit is taken).

Two prescription classes (their optima differ):

* ``deterministic``: ``h_s`` is one action: 3 × 3 = 9 prescriptions;
* ``randomised``: ``h_s`` any distribution. Only ``(p_0, p_1)`` and the expected cost matter, and for a
  given ``p_s`` the cheapest distribution lies on the lower convex hull of the three points
  ``(P(ON | s, a), c_a)``. The solver maximises over ``p_s`` on a grid of ``grid`` points per state
  along that hull (the three pure actions always included), a lower bound on the continuous optimum
  that converges as the grid is refined (the README lists values for several grids).

Policy iteration (exact policy evaluation by a linear solve) gives the infinite-horizon optimum;
``horizon`` backward steps from ``V = 0`` give the optimum of the ``horizon``-step problem. The
reported value is the expectation over the initial count ``k_0 ~ Bin(n, init_on)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .demand_response import DemandResponseConfig, action_costs, kl_to_target, on_probability

CLASSES = ("randomised", "deterministic")


@dataclass
class DemandResponseSolution:
    value: float                   # E over k_0 of the infinite-horizon optimal value
    horizon_value: float | None
    horizon: int | None
    gamma: float
    prescriptions: str
    grid: int
    iterations: int
    values: np.ndarray = field(repr=False)           # V*(k), k = 0..n
    p_off: np.ndarray = field(repr=False)            # optimal p_0 per k (P(ON next) of an OFF device)
    p_on: np.ndarray = field(repr=False)             # optimal p_1 per k


def binomial_pmf(N: int, p: np.ndarray) -> np.ndarray:
    """``[len(p), N + 1]``: P(Bin(N, p) = x)."""
    x = np.arange(N + 1)
    logc = np.array([math.lgamma(N + 1) - math.lgamma(i + 1) - math.lgamma(N - i + 1) for i in x])
    p = np.asarray(p, dtype=np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        logpmf = logc + np.where(x > 0, x * np.log(p), 0.0) + np.where(N - x > 0, (N - x) * np.log1p(-p), 0.0)
    return np.exp(logpmf)


def cheapest_mixtures(p_on: np.ndarray, costs: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid points ``p`` on ``[min p_a, max p_a]`` and the least expected cost of reaching each one by
    mixing the actions ``(p_a, c_a)`` (the lower convex hull). The pure actions' ``p_a`` are included."""
    ps = np.unique(np.concatenate([np.linspace(p_on.min(), p_on.max(), max(grid, 2)), p_on]))
    pts = sorted(zip(p_on.tolist(), costs.tolist()))
    hull: list[tuple[float, float]] = []                        # lower hull (monotone chain)
    for pt in pts:
        while len(hull) >= 2 and ((hull[-1][0] - hull[-2][0]) * (pt[1] - hull[-2][1])
                                  - (hull[-1][1] - hull[-2][1]) * (pt[0] - hull[-2][0])) <= 0:
            hull.pop()
        if hull and abs(hull[-1][0] - pt[0]) < 1e-15:             # equal p: keep the cheaper
            if pt[1] < hull[-1][1]:
                hull[-1] = pt
            continue
        hull.append(pt)
    hx, hy = np.array([h[0] for h in hull]), np.array([h[1] for h in hull])
    return ps, np.interp(ps, hx, hy)


class CountMDP:
    """The coordinator's MDP on ``k`` for a set of (p_0, cost_0) x (p_1, cost_1) choices."""

    def __init__(self, cfg: DemandResponseConfig, prescriptions: str, grid: int) -> None:
        if prescriptions not in CLASSES:
            raise ValueError(f"prescriptions must be one of {', '.join(CLASSES)}, got {prescriptions!r}")
        self.n = n = int(cfg.n_devices)
        p, c = on_probability(cfg), action_costs(cfg)
        if prescriptions == "deterministic":
            self.p0, self.c0, self.p1, self.c1 = p[0], c, p[1], c
        else:
            self.p0, self.c0 = cheapest_mixtures(p[0], c, grid)
            self.p1, self.c1 = cheapest_mixtures(p[1], c, grid)
        k = np.arange(n + 1)
        self.kl = kl_to_target(k / n, cfg.target_on)                        # [n+1]
        self.pmf_off = [binomial_pmf(n - kk, self.p0) for kk in k]          # [G0, n-k+1]
        self.pmf_on = [binomial_pmf(kk, self.p1) for kk in k]               # [G1, k+1]

    def reward(self, k: int) -> np.ndarray:
        """``[G1, G0]`` expected reward in state ``k``."""
        n = self.n
        return -((n - k) * self.c0[None, :] + k * self.c1[:, None]) / n - self.kl[k]

    def expected_next(self, k: int, V: np.ndarray) -> np.ndarray:
        """``[G1, G0]``: E[V(k')] with ``k' = Bin(k, p_1) + Bin(n - k, p_0)``."""
        x, y = np.arange(k + 1), np.arange(self.n - k + 1)
        hankel = V[x[:, None] + y[None, :]]                                  # [k+1, n-k+1]
        return self.pmf_on[k] @ hankel @ self.pmf_off[k].T

    def q(self, V: np.ndarray, gamma: float) -> list[np.ndarray]:
        return [self.reward(k) + gamma * self.expected_next(k, V) for k in range(self.n + 1)]

    def transition(self, k: int, g1: int, g0: int) -> np.ndarray:
        """``[n+1]`` distribution of ``k'`` for choice ``(g1, g0)`` in state ``k``."""
        return np.convolve(self.pmf_on[k][g1], self.pmf_off[k][g0])


def solve_demand_response(cfg: DemandResponseConfig | None = None, gamma: float = 0.9, horizon: int | None = None,
                          prescriptions: str = "randomised", grid: int = 201,
                          max_iterations: int = 200) -> DemandResponseSolution:
    """Optimal discounted team value of demand response (see the module docstring for the method)."""
    cfg = DemandResponseConfig() if cfg is None else cfg
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must be in [0, 1), got {gamma}")
    mdp = CountMDP(cfg, prescriptions, grid)
    n = mdp.n
    policy = [(0, 0)] * (n + 1)
    V = np.zeros(n + 1)
    it = 0
    for it in range(1, max_iterations + 1):                      # policy iteration
        Pm = np.stack([mdp.transition(k, *policy[k]) for k in range(n + 1)])
        r = np.array([mdp.reward(k)[policy[k]] for k in range(n + 1)])
        V = np.linalg.solve(np.eye(n + 1) - gamma * Pm, r)
        Q = mdp.q(V, gamma)
        new = [np.unravel_index(int(np.argmax(qk)), qk.shape) for qk in Q]
        # keep the current choice unless another is strictly better (no flip-flopping between ties)
        new = [old if Q[k][old] >= Q[k][nw] - 1e-12 else nw for k, (old, nw) in enumerate(zip(policy, new))]
        if new == policy:
            break
        policy = new
    init = binomial_pmf(n, np.array([cfg.init_on]))[0]
    horizon_value = None
    if horizon is not None:
        W = np.zeros(n + 1)
        for _ in range(int(horizon)):
            W = np.array([qk.max() for qk in mdp.q(W, gamma)])
        horizon_value = float(init @ W)
    return DemandResponseSolution(
        value=float(init @ V), horizon_value=horizon_value, horizon=horizon, gamma=gamma, prescriptions=prescriptions,
        grid=grid if prescriptions == "randomised" else 3, iterations=it, values=V,
        p_off=np.array([mdp.p0[g0] for _, g0 in policy]), p_on=np.array([mdp.p1[g1] for g1, _ in policy]))
