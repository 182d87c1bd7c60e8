"""Exact analysis of small finite networked games (enumerable joint state-action spaces).

An environment tagged ``finite`` may describe its dynamics as a :class:`FiniteModel`; this module
then computes exact quantities (Q-functions, discounted visitation, exact and κ-truncated policy
gradients) for tabular softmax policies, so truncation results such as Lemma 4 of Scalable Actor
Critic can be checked numerically.

Policies are localized tabular softmax policies: ``theta[i]`` has shape ``[S_i, A_i]`` and agent
``i`` plays ``ζ_i(a_i | s_i) = softmax(theta[i][s_i])[a_i]``. Joint states and joint actions are
enumerated in mixed radix with agent 0 the most significant digit. Equation numbers refer to
Scalable Actor Critic (Qu, Wierman & Li, L4DC 2020)::

    sol = solve(model, theta, gamma=0.7)                 # Q_i (Eq. 3), π^θ (Lemma 1), J (Eq. 2)
    grad = exact_gradient(model, theta, 0.7, solution=sol)              # Eq. 4
    h = truncated_gradient(model, theta, 0.7, kappa=1, solution=sol)    # Eq. 5-7
    table = gradient_error_by_kappa(model, theta, 0.7)                  # Lemma 4 check
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence, Union

import numpy as np

from .errors import SafenetError
from .graph import Graph

TransitionFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]

#: Default limit on joint state-action pairs ``Π|S_i| · Π|A_i|`` (raise it per call if needed).
MAX_PAIRS = 200_000
#: Limit on joint states (the dense ``P_π`` matrix is ``Ns × Ns``).
MAX_STATES = 8192
_BLOCK_ENTRIES = 1 << 22  # entries of one dense block of joint transition rows

#: ``"reward"``, an int cost index, or coefficients ``[1 + m]`` / ``[n, 1 + m]`` of (reward, costs).
Signal = Union[str, int, Sequence[float], np.ndarray]
Weights = Literal["visitation", "reference"]


class ExactError(SafenetError, ValueError):
    """A model, policy or request that the exact solver cannot handle."""


@dataclass(frozen=True)
class FiniteModel:
    """Product-form dynamics of a finite networked game (Eq. 1 of Scalable Actor Critic).

    ``transition(S, A)`` takes joint local states ``S[N, n]`` and joint local actions ``A[N, n]``
    (integers) and returns ``(P, R, C)``: ``P[N, n, S_max]`` the distribution of each agent's next
    local state (agents' next states are independent given ``(s, a)``), ``R[N, n]`` the expected
    reward of each agent and ``C[N, n, m]`` the expected costs.
    ``initial[n, S_max]`` is each agent's initial-state distribution (independent across agents).
    """

    graph: Graph
    n_local_states: tuple[int, ...]
    n_local_actions: tuple[int, ...]
    initial: np.ndarray
    transition: TransitionFn
    n_costs: int = 0


@dataclass(frozen=True)
class ExactSolution:
    """Exact quantities of one localized policy on a :class:`FiniteModel` (arrays over joint indices)."""

    model: FiniteModel
    gamma: float
    policy: tuple[np.ndarray, ...]  #: local ζ_i, ``[S_i, A_i]`` each
    states: np.ndarray               #: joint states ``[Ns, n]``
    actions: np.ndarray              #: joint actions ``[Na, n]``
    joint_policy: np.ndarray         #: ζ^θ(a|s) ``[Ns, Na]``
    initial: np.ndarray              #: π_0(s) ``[Ns]``
    visitation: np.ndarray           #: π^θ(s) of Lemma 1 ``[Ns]`` (sums to 1)
    state_transition: np.ndarray     #: P_π(s'|s) ``[Ns, Ns]``
    reward: np.ndarray               #: selected per-agent signal r_i(s, a) ``[Ns, Na, n]``
    q: np.ndarray                    #: Q_i^θ(s, a) of Eq. 3 ``[Ns, Na, n]``
    v: np.ndarray                    #: V_i^θ(s) ``[Ns, n]``

    @property
    def value(self) -> float:
        """J(θ) of Eq. 2: discounted team signal (mean over agents) from π_0."""
        return float(self.initial @ self.v.mean(axis=1))

    @property
    def pair_weights(self) -> np.ndarray:
        """π^θ(s) ζ^θ(a|s), ``[Ns, Na]``: the distribution of the expectation in Eq. 4 and Eq. 7."""
        return self.visitation[:, None] * self.joint_policy


@dataclass(frozen=True)
class TruncationError:
    """‖ĥ − ∇J‖ for one κ (norms over all agents' gradients stacked) and the Lemma 4 bound."""

    kappa: int
    error: float
    relative_error: float
    bound: float
    agent_errors: np.ndarray  #: ‖ĥ_i − ∇_{θ_i} J‖ per agent
    agent_bounds: np.ndarray  #: c L_i ρ^{κ+1-r} / (1 − γ) per agent


# -- enumeration and policies -----------------------------------------------------------------
def enumerate_joint(sizes: Sequence[int]) -> np.ndarray:
    """All joint tuples ``[Π sizes, n]`` in mixed-radix order (agent 0 most significant)."""
    sizes = tuple(int(s) for s in sizes)
    return np.indices(sizes).reshape(len(sizes), -1).T.astype(np.int64)


def _radix(values: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Mixed-radix codes of the rows of ``values`` (inverse of :func:`enumerate_joint`)."""
    code = np.zeros(values.shape[0], dtype=np.int64)
    for k, size in enumerate(sizes):
        code = code * int(size) + values[:, k]
    return code


def _local_key(sol: ExactSolution, inside: np.ndarray) -> np.ndarray:
    """Code of (s_inside, a_inside) for every joint pair (s, a), flattened ``[Ns·Na]``."""
    s_sizes = np.asarray(sol.model.n_local_states)[inside]
    a_sizes = np.asarray(sol.model.n_local_actions)[inside]
    ks = _radix(sol.states[:, inside], s_sizes)
    ka = _radix(sol.actions[:, inside], a_sizes)
    return (ks[:, None] * int(np.prod(a_sizes)) + ka[None, :]).ravel()


def softmax_policy(model: FiniteModel, theta: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Local policies ζ_i(·|s_i) = softmax(θ_i[s_i]) after checking θ's shapes against the model."""
    n = model.graph.n
    if len(theta) != n:
        raise ExactError(f"theta needs one [S_i, A_i] table per agent ({n}), got {len(theta)}")
    out = []
    for i, t in enumerate(theta):
        t = np.asarray(t, dtype=np.float64)
        want = (model.n_local_states[i], model.n_local_actions[i])
        if t.shape != want:
            raise ExactError(f"theta[{i}] must have shape {want}, got {t.shape}")
        if not np.all(np.isfinite(t)):
            raise ExactError(f"theta[{i}] has non-finite entries")
        e = np.exp(t - t.max(axis=1, keepdims=True))
        out.append(e / e.sum(axis=1, keepdims=True))
    return tuple(out)


def _check_model(model: FiniteModel, gamma: float, max_pairs: int) -> tuple[int, int]:
    n = model.graph.n
    if not 0.0 <= gamma < 1.0:
        raise ExactError(f"gamma must lie in [0, 1), got {gamma}")
    if len(model.n_local_states) != n or len(model.n_local_actions) != n:
        raise ExactError(f"model needs n_local_states and n_local_actions for each of {n} agents")
    ns = math.prod(int(s) for s in model.n_local_states)
    na = math.prod(int(a) for a in model.n_local_actions)
    if ns * na > max_pairs:
        raise ExactError(f"joint space too large for exact analysis: {ns} joint states x {na} joint "
                         f"actions = {ns * na} pairs > max_pairs={max_pairs}")
    if ns > MAX_STATES:
        raise ExactError(f"too many joint states ({ns} > {MAX_STATES}) for a dense P_pi matrix")
    init = np.asarray(model.initial, dtype=np.float64)
    if init.ndim != 2 or init.shape[0] != n or init.shape[1] < max(model.n_local_states):
        raise ExactError(f"initial must have shape [n, S_max] = [{n}, {max(model.n_local_states)}], "
                         f"got {init.shape}")
    for i, s in enumerate(model.n_local_states):
        if np.any(init[i] < 0) or abs(init[i, :s].sum() - 1.0) > 1e-8:
            raise ExactError(f"initial[{i}] is not a distribution over agent {i}'s {s} local states")
    return ns, na


# -- model evaluation -------------------------------------------------------------------------
def _select_signal(R: np.ndarray, C: np.ndarray, signal: Signal, n: int) -> np.ndarray:
    """Per-pair, per-agent signal: the reward, one cost, or a linear (Lagrangian) combination."""
    m = C.shape[-1]
    if isinstance(signal, str):
        if signal != "reward":
            raise ExactError(f"signal must be 'reward', a cost index or coefficients, got {signal!r}")
        return R
    if isinstance(signal, (int, np.integer)) and not isinstance(signal, bool):
        if not 0 <= signal < m:
            raise ExactError(f"cost index {signal} out of range: the model has {m} costs")
        return C[..., int(signal)]
    coef = np.asarray(signal, dtype=np.float64)
    if coef.shape not in ((1 + m,), (n, 1 + m)):
        raise ExactError(f"signal coefficients must have shape [{1 + m}] or [{n}, {1 + m}], "
                         f"got {coef.shape}")
    coef = np.broadcast_to(coef, (n, 1 + m))
    return R * coef[:, 0] + np.einsum("pik,ik->pi", C, coef[:, 1:])


def _evaluate(model: FiniteModel, states: np.ndarray, actions: np.ndarray,
              signal: Signal) -> tuple[np.ndarray, np.ndarray]:
    """Call ``model.transition`` on all pairs (s, a) of a block of joint states (state-major).

    Returns the local next-state factors ``[b·Na, n, S_max]`` and the selected signal ``[b·Na, n]``.
    """
    n, ns, na = model.graph.n, len(states), len(actions)
    s_max = max(model.n_local_states)
    P, R, C = model.transition(np.repeat(states, na, axis=0), np.tile(actions, (ns, 1)))
    P, R, C = (np.asarray(x, dtype=np.float64) for x in (P, R, C))
    N = ns * na
    if P.ndim != 3 or P.shape[:2] != (N, n) or P.shape[2] < s_max:
        raise ExactError(f"transition returned P of shape {P.shape}, expected [{N}, {n}, {s_max}]")
    if R.shape != (N, n):
        raise ExactError(f"transition returned R of shape {R.shape}, expected [{N}, {n}]")
    C = C.reshape(N, n, -1) if C.size else np.zeros((N, n, 0))
    for i, s in enumerate(model.n_local_states):
        p = P[:, i]
        if np.any(p < -1e-12) or np.max(np.abs(p[:, :s].sum(axis=1) - 1.0)) > 1e-8:
            raise ExactError(f"transition's P[:, {i}] is not a distribution over {s} local states")
    if not (np.all(np.isfinite(R)) and np.all(np.isfinite(C))):
        raise ExactError("transition returned non-finite rewards or costs")
    return P, _select_signal(R, C, signal, n)


def _joint_rows(P_local: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Joint next-state rows Π_i P_i(s'_i | s, a) (Eq. 1) as a dense ``[B, Ns]`` block.

    Built from the last agent outwards so the long axis stays innermost (agent 0 most significant).
    """
    rows = P_local[:, -1, : sizes[-1]]
    for i in range(len(sizes) - 2, -1, -1):
        rows = (P_local[:, i, : sizes[i], None] * rows[:, None, :]).reshape(len(rows), -1)
    return rows


def solve(model: FiniteModel, theta: Sequence[np.ndarray], gamma: float, *,
          signal: Signal = "reward", max_pairs: int = MAX_PAIRS) -> ExactSolution:
    """Exact Q_i^θ (Eq. 3), V_i^θ, P_π and the discounted visitation π^θ (Lemma 1) by linear solves.

    Raises :class:`ExactError` (a ``ValueError``) when the joint space exceeds ``max_pairs``
    state-action pairs, before allocating anything large.
    """
    gamma = float(gamma)
    ns, na = _check_model(model, gamma, max_pairs)
    n, sizes = model.graph.n, tuple(int(s) for s in model.n_local_states)
    policy = softmax_policy(model, theta)
    states = enumerate_joint(sizes)
    actions = enumerate_joint(model.n_local_actions)
    joint_policy = np.ones((ns, na))
    init = np.ones(ns)
    init_arr = np.asarray(model.initial, dtype=np.float64)
    for i in range(n):
        joint_policy *= policy[i][states[:, i][:, None], actions[:, i][None, :]]
        init *= init_arr[i, states[:, i]]
    # Eq. 1 rows P(s'|s, a) are built densely for a block of joint states at a time.
    block = max(1, _BLOCK_ENTRIES // (na * ns))
    blocks = [slice(b, min(b + block, ns)) for b in range(0, ns, block)]
    cache: dict[int, np.ndarray] = {}

    def rows(sl: slice) -> tuple[np.ndarray, np.ndarray]:  # ([b·Na, Ns], signal [b, Na, n])
        local, sig = _evaluate(model, states[sl], actions, signal)
        if len(blocks) == 1:
            cache[0] = local
        return _joint_rows(local, sizes), sig.reshape(-1, na, n)

    p_pi = np.empty((ns, ns))
    reward = np.empty((ns, na, n))
    for sl in blocks:
        joint, reward[sl] = rows(sl)
        p_pi[sl] = np.matmul(joint_policy[sl, None, :], joint.reshape(-1, na, ns))[:, 0]
    system = np.eye(ns) - gamma * p_pi
    r_pi = np.einsum("sa,sai->si", joint_policy, reward)
    v = np.linalg.solve(system, r_pi)
    visitation = (1.0 - gamma) * np.linalg.solve(system.T, init)
    q = np.empty((ns, na, n))
    for sl in blocks:
        joint = _joint_rows(cache[0], sizes) if cache else rows(sl)[0]
        q[sl] = reward[sl] + gamma * (joint @ v).reshape(-1, na, n)
    return ExactSolution(model, gamma, policy, states, actions, joint_policy, init, visitation,
                         p_pi, reward, q, v)


def objective(model: FiniteModel, theta: Sequence[np.ndarray], gamma: float, *,
              signal: Signal = "reward", max_pairs: int = MAX_PAIRS) -> float:
    """J(θ) of Eq. 2 (team average of the selected signal, discounted, from π_0)."""
    return solve(model, theta, gamma, signal=signal, max_pairs=max_pairs).value


# -- gradients --------------------------------------------------------------------------------
def _score_expectation(sol: ExactSolution, g: np.ndarray) -> list[np.ndarray]:
    """``1/(1-γ) E_{s~π^θ, a~ζ^θ}[g_i(s, a) ∇_{θ_i} log ζ_i(a_i|s_i)]`` for each agent ``i``.

    For softmax, ∇_{θ_i} log ζ_i(a_i|s_i) is ``e_{a_i} − ζ_i(·|s_i)`` in row ``s_i``.
    """
    weighted = sol.pair_weights[..., None] * g
    out = []
    for i, pol in enumerate(sol.policy):
        key = _local_key(sol, np.arange(len(sol.policy)) == i)  # s_i · A_i + a_i
        m = np.bincount(key, weights=weighted[..., i].ravel(), minlength=pol.size).reshape(pol.shape)
        out.append((m - pol * m.sum(axis=1, keepdims=True)) / (1.0 - sol.gamma))
    return out


def _solution(model: FiniteModel, theta: Sequence[np.ndarray], gamma: float, signal: Signal,
              max_pairs: int, solution: ExactSolution | None) -> ExactSolution:
    if solution is None:
        return solve(model, theta, gamma, signal=signal, max_pairs=max_pairs)
    if solution.model is not model or solution.gamma != float(gamma):
        raise ExactError("the given solution belongs to another model or discount")
    if any(not np.allclose(a, b, rtol=0, atol=1e-12)
           for a, b in zip(softmax_policy(model, theta), solution.policy)):
        raise ExactError("the given solution was computed for another theta")
    return solution


def exact_gradient(model: FiniteModel, theta: Sequence[np.ndarray], gamma: float, *,
                   signal: Signal = "reward", max_pairs: int = MAX_PAIRS,
                   solution: ExactSolution | None = None) -> list[np.ndarray]:
    """∇_{θ_i} J(θ) for every agent by the policy gradient theorem (Lemma 1, Eq. 4).

    ``solution`` (from :func:`solve` with the same θ and signal) skips recomputing Q.
    """
    sol = _solution(model, theta, gamma, signal, max_pairs, solution)
    q_team = sol.q.mean(axis=2, keepdims=True)  # Q = (1/n) Σ_i Q_i (Eq. 3)
    return _score_expectation(sol, np.broadcast_to(q_team, sol.q.shape))


def truncated_q(sol: ExactSolution, kappa: int, weights: Weights = "visitation",
                reference: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Q̂_j(s_{N_j^κ}, a_{N_j^κ}) of Eq. 5, evaluated at every joint pair: ``[Ns, Na, n]``.

    ``weights="visitation"``: w_j is the conditional law of the agents outside N_j^κ given those
    inside under π^θ(s)ζ^θ(a|s) (the fixed point TD learning on κ-hop inputs estimates); inputs
    never visited fall back to uniform weights. ``weights="reference"``: w_j is a point mass at a
    fixed ``reference = (s̄, ā)`` (default all zeros). Both satisfy Eq. 6.
    """
    graph = sol.model.graph
    within = graph.within(kappa)
    s_sizes, a_sizes = sol.model.n_local_states, sol.model.n_local_actions
    if weights == "reference":
        s_bar, a_bar = (np.zeros(graph.n, np.int64),) * 2 if reference is None else reference
        s_bar, a_bar = np.asarray(s_bar, np.int64), np.asarray(a_bar, np.int64)
        if s_bar.shape != (graph.n,) or a_bar.shape != (graph.n,):
            raise ExactError(f"reference must be two integer arrays of shape [{graph.n}]")
        if np.any(s_bar < 0) or np.any(s_bar >= s_sizes) or np.any(a_bar < 0) or np.any(a_bar >= a_sizes):
            raise ExactError("reference state or action outside the agents' local ranges")
    elif weights != "visitation":
        raise ExactError(f"weights must be 'visitation' or 'reference', got {weights!r}")
    pw = sol.pair_weights.ravel()
    qhat = np.empty_like(sol.q)
    for j in range(graph.n):
        inside = within[j]
        q_j = sol.q[..., j]
        if inside.all():
            qhat[..., j] = q_j
        elif weights == "reference":
            s_idx = _radix(np.where(inside, sol.states, s_bar), s_sizes)
            a_idx = _radix(np.where(inside, sol.actions, a_bar), a_sizes)
            qhat[..., j] = q_j[s_idx[:, None], a_idx[None, :]]
        else:
            key = _local_key(sol, inside)
            mass = np.bincount(key, weights=pw)
            total = np.bincount(key, weights=pw * q_j.ravel())
            uniform = np.bincount(key, weights=q_j.ravel()) / np.maximum(np.bincount(key), 1)
            seen = mass > 0
            group = np.where(seen, total / np.where(seen, mass, 1.0), uniform)
            qhat[..., j] = group[key].reshape(q_j.shape)
    return qhat


def truncated_gradient(model: FiniteModel, theta: Sequence[np.ndarray], gamma: float,
                       kappa: int, weights: Weights = "visitation", *,
                       reference: tuple[np.ndarray, np.ndarray] | None = None,
                       signal: Signal = "reward", max_pairs: int = MAX_PAIRS,
                       solution: ExactSolution | None = None) -> list[np.ndarray]:
    """ĥ_i(θ) of Lemma 4 (Eq. 7): only the truncated Q̂_j (Eq. 5) of agents j ∈ N_i^κ enter."""
    sol = _solution(model, theta, gamma, signal, max_pairs, solution)
    qhat = truncated_q(sol, kappa, weights, reference)
    mixing = model.graph.within(kappa).astype(np.float64) / model.graph.n  # [j, i]: j ∈ N_i^κ
    return _score_expectation(sol, qhat @ mixing)


# -- Lemma 4 check ----------------------------------------------------------------------------
def reward_radius(sol: ExactSolution, atol: float = 1e-12) -> int:
    """Smallest r such that every r_i(s, a) depends only on (s, a) of N_i^r.

    Eq. 1-2 have r = 0; signals shared through neighbours (e.g. collisions) have r = 1. Lemma 3's
    decay then starts r steps earlier, so the bound below uses ρ^{κ+1-r}.
    """
    graph = sol.model.graph
    for r in range(graph.diameter):
        within = graph.within(r)
        for i in range(graph.n):
            key = _local_key(sol, within[i])
            vals = sol.reward[..., i].ravel()
            mean = np.bincount(key, weights=vals) / np.maximum(np.bincount(key), 1)
            if np.max(np.abs(vals - mean[key])) > atol:
                break
        else:
            return r
    return graph.diameter


def lemma4_bounds(sol: ExactSolution, kappa: int, radius: int | None = None) -> np.ndarray:
    """Per-agent bound c L_i ρ^{κ+1-r} / (1−γ) of Lemma 4 with Lemma 3's c = r̄/(1−γ), ρ = γ.

    r̄ is the range of the signal (max − min), L_i = max_{s_i, a_i} ‖∇_{θ_i} log ζ_i(a_i|s_i)‖
    and r the :func:`reward_radius` (exponent floored at 0).
    """
    g = sol.gamma
    r = reward_radius(sol) if radius is None else radius
    c = float(sol.reward.max() - sol.reward.min()) / (1.0 - g)
    lips = []
    for pol in sol.policy:
        # ‖e_a − ζ‖² = 1 − 2ζ_a + Σ_b ζ_b²
        sq = 1.0 - 2.0 * pol + (pol**2).sum(axis=1, keepdims=True)
        lips.append(float(np.sqrt(np.maximum(sq, 0.0)).max()))
    return c * np.asarray(lips) * g ** max(kappa + 1 - r, 0) / (1.0 - g)


def _stack(grads: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(x) for x in grads])


def gradient_error_by_kappa(model: FiniteModel, theta: Sequence[np.ndarray], gamma: float,
                            kappas: Sequence[int] | None = None, weights: Weights = "visitation", *,
                            reference: tuple[np.ndarray, np.ndarray] | None = None,
                            signal: Signal = "reward", max_pairs: int = MAX_PAIRS,
                            solution: ExactSolution | None = None) -> dict[int, TruncationError]:
    """κ ↦ ‖ĥ(θ) − ∇J(θ)‖ over all agents stacked, its relative size and Lemma 4's bound.

    ``kappas`` defaults to ``0 .. diameter``; the model is solved once for all of them.
    """
    sol = _solution(model, theta, gamma, signal, max_pairs, solution)
    kappas = range(model.graph.diameter + 1) if kappas is None else kappas
    exact = exact_gradient(model, theta, gamma, solution=sol)
    norm = float(np.linalg.norm(_stack(exact)))
    radius = reward_radius(sol)
    out: dict[int, TruncationError] = {}
    for kappa in kappas:
        h = truncated_gradient(model, theta, gamma, kappa, weights, reference=reference, solution=sol)
        agent_err = np.array([np.linalg.norm(a - b) for a, b in zip(h, exact)])
        bounds = lemma4_bounds(sol, kappa, radius)
        err = float(np.sqrt((agent_err**2).sum()))
        out[int(kappa)] = TruncationError(int(kappa), err, err / norm if norm > 0 else float("nan"),
                                          float(np.sqrt((bounds**2).sum())), agent_err, bounds)
    return out


# -- a random model for tests and benchmarks --------------------------------------------------
def random_model(graph: Graph, n_states: int = 2, n_actions: int = 2, *, coupling: float = 1.0,
                 seed: int = 0) -> FiniteModel:
    """A random product-form model obeying Eq. 1 with rewards r_i(s_i, a_i) in [0, 1].

    Agent i's next state has logits ``log T_i(·|s_i, a_i) + coupling · Σ_{k ~ i} B_i(·, s_k)``
    with a random kernel T_i and random normal interaction tables B_i, so neighbours interact
    non-additively (a mixture of kernels would make every Q_i additive across agents).
    """
    rng = np.random.default_rng(seed)
    n = graph.n
    own = np.log(rng.dirichlet(np.ones(n_states), size=(n, n_states, n_actions)))
    inter = rng.normal(size=(n, n_states, n_states))  # [i, s_k, x]
    rew = rng.uniform(size=(n, n_states, n_actions))
    adj = graph.adjacency.astype(np.float64)
    agents = np.arange(n)

    def transition(S: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pull = inter[agents[None, :, None], S[:, None, :]]      # [N, i, k, x] = B_i(x, s_k)
        logits = own[agents, S, A] + coupling * np.einsum("ik,nikx->nix", adj, pull)
        P = np.exp(logits - logits.max(axis=2, keepdims=True))
        return P / P.sum(axis=2, keepdims=True), rew[agents, S, A], np.zeros((len(S), n, 0))

    initial = rng.dirichlet(np.ones(n_states), size=n)
    return FiniteModel(graph, (n_states,) * n, (n_actions,) * n, initial, transition)
