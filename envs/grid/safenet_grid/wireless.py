"""The wireless access grid: users on a grid of cells share access points (Scalable Actor Critic).

Geometry
--------
An ``rows x cols`` grid of cells holds ``users_per_cell`` users each, indexed cell-major: cell
``(r, c)`` (number ``r * cols + c``) holds users ``(r * cols + c) * users_per_cell + b``. Access
points (APs) sit at the interior corners of the grid: AP ``j`` is corner ``(j // (cols - 1),
j % (cols - 1))`` and serves the users of cells ``(r, c), (r, c + 1), (r + 1, c), (r + 1, c + 1)``.
Two users are neighbours in the game's graph when they share an AP.

Local state, actions, dynamics
------------------------------
A user's local state is a ``d``-bit vector (``d = deadline``): bit ``k`` is 1 when a packet sits in
slot ``k``; slot 0 is the packet that expires soonest, slot ``d - 1`` the newest. Its **index** reads
the bits as a binary number with slot ``k`` as bit ``k``: ``index = sum_k bit_k * 2**k`` (so with
``d = 2``: 0 = empty, 1 = only the old packet, 2 = only the new packet, 3 = both).

Action 0 does nothing; action ``1 + slot * m_i + k`` sends the packet in ``slot`` to the ``k``-th
AP user ``i`` reaches (its ``m_i`` APs in increasing index order): ``1 + d * m_i`` actions.

One step:

1. an AP chosen by exactly one user is *bound* to it; two or more senders collide and nothing goes
   through that AP. Choosing an empty slot still occupies the AP (and can cause collisions);
2. a bound user whose chosen slot holds a packet delivers it with the AP's success probability
   ``q_AP``: reward 1 and the slot is cleared;
3. packets age: every slot moves down by one (the packet in slot 0 expires) and a new packet enters
   slot ``d - 1`` with probability ``p = arrival_prob``.

Episodes start with empty slots except slot ``d - 1`` ~ Bernoulli(p) per user, last
``episode_length`` steps (11: the reference's first step + 10) and end by truncation.

Cost (safenet's safe variant): every transmission attempt (action != 0) costs 1 unit of "energy";
each user's per-episode sum must stay below ``energy_budget * episode_length``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from safenet.config import config_values
from safenet.copies import CopyRNG
from safenet.errors import ConfigError, SafenetError
from safenet.exact import FiniteModel
from safenet.game import BatchedGame, GameSpec, StepResult, to_parallel_env
from safenet.graph import Graph

#: Default per-user energy budget: transmission attempts per step (see the README for how it was chosen).
DEFAULT_ENERGY_BUDGET = 0.3


@dataclass
class WirelessConfig:
    """Config keys of the wireless access grid (the ``env.*`` section of a run config)."""

    rows: int = 3                   # cells per column of the grid
    cols: int = 3                   # cells per row of the grid
    users_per_cell: int = 1
    deadline: int = 2               # d: slots per user (a packet lives d steps)
    arrival_prob: float = 0.5       # p: probability that a new packet arrives at a user per step
    success_probs: Any = None       # per-AP success probabilities: null (RandomState(0).rand), a float or a list
    episode_length: int = 11
    energy_budget: float = DEFAULT_ENERGY_BUDGET  # allowed transmission attempts per step per user

    def __post_init__(self) -> None:
        validate_config(self)


def _fail(key: str, message: str) -> None:
    raise ConfigError(f"env.{key}: {message}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def validate_config(cfg: WirelessConfig) -> None:
    """Check every key of ``cfg``; raises :class:`~safenet.errors.ConfigError` naming the bad key."""
    for key in ("rows", "cols"):
        v = getattr(cfg, key)
        if not _is_int(v) or v < 2:
            _fail(key, f"must be an integer >= 2 (access points sit at interior corners), got {v!r}")
    for key, low in (("users_per_cell", 1), ("deadline", 1), ("episode_length", 1)):
        v = getattr(cfg, key)
        if not _is_int(v) or v < low:
            _fail(key, f"must be an integer >= {low}, got {v!r}")
    if cfg.deadline > 30:
        _fail("deadline", f"must be <= 30 (local states are 2**deadline), got {cfg.deadline}")
    if not (_is_number(cfg.arrival_prob) and 0.0 <= cfg.arrival_prob <= 1.0):
        _fail("arrival_prob", f"must be a probability in [0, 1], got {cfg.arrival_prob!r}")
    if not (_is_number(cfg.energy_budget) and cfg.energy_budget >= 0.0):
        _fail("energy_budget", f"must be a number >= 0 (attempts per step per user), got {cfg.energy_budget!r}")
    resolve_success_probs(cfg.success_probs, (cfg.rows - 1) * (cfg.cols - 1))


def resolve_success_probs(value: Any, n_aps: int) -> np.ndarray:
    """Per-AP success probabilities from a config value: None, a float, or one value per AP."""
    if value is None:
        return np.random.RandomState(0).rand(n_aps)
    if _is_number(value):
        q = np.full(n_aps, float(value))
    else:
        try:
            q = np.asarray(list(value), dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"env.success_probs: expected null, a float or a list of {n_aps} floats, "
                              f"got {value!r}") from None
        if q.shape != (n_aps,):
            raise ConfigError(f"env.success_probs: the grid has {n_aps} access points, got {q.size} values")
    if not np.all(np.isfinite(q) & (q >= 0.0) & (q <= 1.0)):
        raise ConfigError(f"env.success_probs: probabilities must be in [0, 1], got {q.tolist()}")
    return q


def access_matrix(rows: int, cols: int, users_per_cell: int) -> np.ndarray:
    """``M[user, ap]``: true when the user's cell touches the access point."""
    n_aps = (rows - 1) * (cols - 1)
    M = np.zeros((rows * cols * users_per_cell, n_aps), dtype=bool)
    for j in range(n_aps):
        r, c = divmod(j, cols - 1)
        for cell in (r * cols + c, r * cols + c + 1, (r + 1) * cols + c, (r + 1) * cols + c + 1):
            M[cell * users_per_cell: (cell + 1) * users_per_cell, j] = True
    return M


def share_an_ap(access: np.ndarray) -> np.ndarray:
    """``[n, n]`` bool: users ``i`` and ``j`` reach a common AP (``access @ access.T > 0``), built AP by AP
    (each AP joins the few users it serves) rather than by an ``n × n_aps × n`` integer product."""
    n = access.shape[0]
    adj = np.zeros((n, n), dtype=bool)
    for users in (np.flatnonzero(col) for col in np.asarray(access, dtype=bool).T):
        adj[np.ix_(users, users)] = True
    return adj


class WirelessGrid(BatchedGame):
    """``num_envs`` copies of the wireless access grid, stepped with vectorised numpy.

    See the module docstring for the dynamics and the encodings. ``info["local_state"]`` holds each
    user's local state index; :meth:`state` returns every user's bits, concatenated user by user.
    """

    per_copy_seeds = True                                     # reset takes per-copy seeds (safenet.copies)

    def __init__(self, rows: int = 3, cols: int = 3, users_per_cell: int = 1, deadline: int = 2,
                 arrival_prob: float = 0.5, success_probs: float | Sequence[float] | None = None,
                 episode_length: int = 11, energy_budget: float = DEFAULT_ENERGY_BUDGET,
                 num_envs: int = 1, seed: int | None = None) -> None:
        self.config = WirelessConfig(rows, cols, users_per_cell, deadline, arrival_prob, success_probs,
                                     episode_length, energy_budget)
        if not _is_int(num_envs) or num_envs < 1:
            raise SafenetError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.num_envs = B = int(num_envs)
        self.rows, self.cols, self.users_per_cell = int(rows), int(cols), int(users_per_cell)
        self.deadline = d = int(deadline)
        self.arrival_prob = float(arrival_prob)
        self.episode_length = int(episode_length)
        self.energy_budget = float(energy_budget)
        self.n_aps = (self.rows - 1) * (self.cols - 1)
        self.success_probs = resolve_success_probs(success_probs, self.n_aps)
        self.access = access_matrix(self.rows, self.cols, self.users_per_cell)       # [n, n_aps]
        n = self.access.shape[0]
        #: the APs each user reaches, in increasing index order
        self.user_aps: list[np.ndarray] = [np.flatnonzero(row) for row in self.access]
        self.served = self.access.sum(axis=0)                                         # users per AP
        graph = Graph(share_an_ap(self.access))
        action_dims = tuple(1 + d * len(aps) for aps in self.user_aps)
        limit = self.energy_budget * self.episode_length
        self.spec = GameSpec(
            name=f"grid_wireless_{self.rows}x{self.cols}", agents=tuple(f"user_{i}" for i in range(n)),
            graph=graph, obs_dims=(d,) * n, action_kind="discrete", action_dims=action_dims,
            episode_length=self.episode_length, n_costs=(1,) * n, cost_limits=tuple((limit,) for _ in range(n)),
            cost_names=("energy",), state_dim=n * d, n_local_states=(2 ** d,) * n, tags=frozenset({"finite"}))
        # (agent, action) tables, padded to the widest action set; padded entries are never used
        A = self.spec.action_dim
        self._ap = np.full((n, A), -1, dtype=np.int64)       # AP index, -1 for "do nothing"
        self._slot = np.zeros((n, A), dtype=np.int64)        # slot sent (0 for "do nothing")
        for i, aps in enumerate(self.user_aps):
            m = len(aps)
            for slot in range(d):
                self._ap[i, 1 + slot * m: 1 + (slot + 1) * m] = aps
                self._slot[i, 1 + slot * m: 1 + (slot + 1) * m] = slot
        self._q = np.where(self._ap >= 0, self.success_probs[np.maximum(self._ap, 0)], 0.0)
        self._agent_offset = np.arange(n) * A                # row offsets into the flattened tables
        self._copy_ap_offset = (np.arange(B) * (self.n_aps + 1))[:, None]
        self._bits = 1 << np.arange(d)                       # bit weight of each slot
        self._top = 1 << (d - 1)                             # the newest slot's bit
        self._rng = CopyRNG.for_batch(seed, B)               # one generator per copy (safenet.copies)
        self._s: np.ndarray | None = None                    # local state indices [B, n]
        self._t = np.zeros(B, dtype=np.int64)                # steps taken in the current episode

    # -- encodings ------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.spec.n

    def bits(self, local_state: np.ndarray) -> np.ndarray:
        """Local state indices ``[...]`` → slot bits ``[..., d]`` (int64, slot ``k`` = bit ``k``)."""
        return (np.asarray(local_state)[..., None] >> np.arange(self.deadline)) & 1

    def index(self, bits: np.ndarray) -> np.ndarray:
        """Slot bits ``[..., d]`` → local state indices ``[...]``."""
        return (np.asarray(bits, dtype=np.int64) & 1) @ self._bits

    def action_index(self, agent: int, slot: int, k: int) -> int:
        """The action with which ``agent`` sends its ``slot`` packet to its ``k``-th reachable AP."""
        m = len(self.user_aps[agent])
        if not (0 <= slot < self.deadline and 0 <= k < m):
            raise SafenetError(f"agent {agent} has slots 0..{self.deadline - 1} and {m} reachable APs; "
                               f"got slot {slot}, AP choice {k}")
        return 1 + slot * m + k

    def action_ap(self) -> np.ndarray:
        """``[n, action_dim]``: the AP each (agent, action) sends to, -1 for "do nothing"/padding."""
        return self._ap.copy()

    def action_slot(self) -> np.ndarray:
        """``[n, action_dim]``: the slot each (agent, action) sends (0 for "do nothing"/padding)."""
        return self._slot.copy()

    # -- batched game ---------------------------------------------------------------------------
    def _initial(self, copies: np.ndarray | None = None) -> np.ndarray:
        """Fresh episodes for ``copies`` (default: all): only the newest slot, Bernoulli(p)."""
        return (self._rng.random((self.n,), copies) < self.arrival_prob).astype(np.int64) * self._top

    def _obs(self, s: np.ndarray) -> np.ndarray:
        return self.bits(s).astype(np.float32)

    def reset(self, seed: int | Sequence[int] | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._rng = CopyRNG.for_batch(seed, self.num_envs)
        self._s = self._initial()
        self._t[:] = 0
        return self._obs(self._s), {"local_state": self._s.copy()}

    def set_local_state(self, local_state: np.ndarray | Sequence[int]) -> np.ndarray:
        """Put every copy into given local states (``[n]`` or ``[B, n]`` indices); returns the obs.

        For tests and exact checks: the episode clocks are left as they are.
        """
        s = np.asarray(local_state, dtype=np.int64)
        s = np.broadcast_to(s, (self.num_envs, self.n)).copy() if s.ndim == 1 else s.copy()
        if s.shape != (self.num_envs, self.n) or s.min() < 0 or s.max() >= 2 ** self.deadline:
            raise SafenetError(f"{self.spec.name}: local states must be [n] or [{self.num_envs}, {self.n}] "
                               f"indices in 0..{2 ** self.deadline - 1}")
        if self._s is None:
            self._t[:] = 0
        self._s = s
        return self._obs(s)

    def step(self, actions: np.ndarray) -> StepResult:
        if self._s is None:
            raise SafenetError(f"{self.spec.name}: call reset() before step()")
        a = self.check_actions(actions)
        B, n, s = self.num_envs, self.n, self._s
        flat = self._agent_offset + a                                     # [B, n] into the tables
        ap = self._ap.ravel()[flat]
        slot = self._slot.ravel()[flat]
        sending = ap >= 0
        # senders per (copy, AP); bin 0 of each copy collects the users that do nothing
        bins = self._copy_ap_offset + ap + 1
        counts = np.bincount(bins.ravel(), minlength=B * (self.n_aps + 1))
        sole = sending & (counts[bins] == 1)
        has_packet = ((s >> slot) & 1).astype(bool)
        u = self._rng.random((2, n)).transpose(1, 0, 2)                   # [2, B, n], per copy
        success = sole & has_packet & (u[0] < self._q.ravel()[flat])
        s = s & ~(success.astype(np.int64) << slot)                        # delivered packets leave
        s = (s >> 1) | ((u[1] < self.arrival_prob).astype(np.int64) * self._top)  # age, then arrivals
        reward = success.astype(np.float32)
        cost = sending.astype(np.float32)[:, :, None]
        self._t += 1
        truncated = self._t >= self.episode_length
        terminated = np.zeros(B, dtype=bool)
        info: dict[str, Any] = {}
        if truncated.any():
            info["final_obs"] = self._obs(s)
            info["final_local_state"] = s.copy()
            info["final_state"] = info["final_obs"].reshape(B, -1)
            s = s.copy()
            s[truncated] = self._initial(np.flatnonzero(truncated))
            self._t[truncated] = 0
        self._s = s
        info["local_state"] = s.copy()
        return self._obs(s), reward, cost, terminated, truncated, info

    def state(self) -> np.ndarray:
        """``[B, n * d]``: every user's slot bits (floats), user 0's first."""
        if self._s is None:
            raise SafenetError(f"{self.spec.name}: call reset() before state()")
        return self._obs(self._s).reshape(self.num_envs, -1)

    # -- reference policies ---------------------------------------------------------------------
    def earliest_packet_actions(self, local_state: np.ndarray, rng: np.random.Generator, send_prob: float = 1.0,
                                ap_choice: Literal["random", "weighted"] = "random") -> np.ndarray:
        """A simple policy: with probability ``send_prob`` send the earliest packet (if any).

        ``ap_choice="random"`` picks a reachable AP uniformly; ``"weighted"`` picks AP ``y`` with
        probability proportional to ``q_y / (users served by y)`` (the reference's baseline, which
        grid-searches ``send_prob``). ``local_state`` is ``[..., n]``; returns actions of its shape.
        """
        s = np.asarray(local_state, dtype=np.int64)
        n_ap = np.array([len(x) for x in self.user_aps])                  # reachable APs per user
        kmax = int(n_ap.max())
        weights = np.zeros((self.n, kmax))
        for i, aps in enumerate(self.user_aps):
            if ap_choice == "weighted":
                w = self.success_probs[aps] / self.served[aps]
                weights[i, : len(aps)] = w / w.sum() if w.sum() > 0 else 1.0 / len(aps)
            elif ap_choice == "random":
                weights[i, : len(aps)] = 1.0 / len(aps)
            else:
                raise SafenetError(f"ap_choice must be 'random' or 'weighted', got {ap_choice!r}")
        cum = np.cumsum(weights, axis=1)
        k = np.minimum((rng.random(s.shape)[..., None] > cum[:, :-1]).sum(axis=-1), n_ap - 1)
        earliest = np.zeros(s.shape, dtype=np.int64)                      # lowest set bit = earliest slot
        for slot in range(self.deadline - 1, -1, -1):
            earliest = np.where((s >> slot) & 1 == 1, slot, earliest)
        send = (s > 0) & (rng.random(s.shape) < send_prob)
        return np.where(send, 1 + earliest * n_ap + k, 0).astype(np.int64)

    # -- exact model ----------------------------------------------------------------------------
    def finite_model(self) -> FiniteModel:
        """The exact product-form dynamics (for small instances, see :mod:`safenet.exact`).

        ``transition(S[N, n], A[N, n])`` gives each user's next-state distribution ``P[N, n, 2**d]``,
        expected reward ``R = q_AP * 1[sole sender on its AP and its slot holds a packet]`` and
        expected cost ``C[N, n, 1] = 1[action != 0]``.
        """
        n, S = self.n, 2 ** self.deadline
        p, top, n_aps = self.arrival_prob, self._top, self.n_aps
        action_dims = np.asarray(self.spec.action_dims)
        ap_table, slot_table, q_table = self._ap.ravel(), self._slot.ravel(), self._q.ravel()
        offset = self._agent_offset
        states = np.arange(S)

        def transition(S_: np.ndarray, A_: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            s = np.asarray(S_, dtype=np.int64)
            a = np.asarray(A_, dtype=np.int64)
            if s.ndim != 2 or s.shape[1] != n or a.shape != s.shape:
                raise SafenetError(f"transition expects S and A of shape [N, {n}], got {s.shape} and {a.shape}")
            if (a < 0).any() or (a >= action_dims).any() or (s < 0).any() or (s >= S).any():
                raise SafenetError(f"transition: states must be in 0..{S - 1} and actions in 0..action_dims[i]-1")
            N = s.shape[0]
            flat = offset + a
            ap, slot = ap_table[flat], slot_table[flat]
            sending = ap >= 0
            bins = (np.arange(N) * (n_aps + 1))[:, None] + ap + 1
            counts = np.bincount(bins.ravel(), minlength=N * (n_aps + 1))
            ok = sending & (counts[bins] == 1) & (((s >> slot) & 1) == 1)
            R = np.where(ok, q_table[flat], 0.0)
            kept = s >> 1                                                 # packet not delivered
            sent = (s & ~(ok.astype(np.int64) << slot)) >> 1              # packet delivered
            P = np.zeros((N, n, S))
            for nxt, w in ((kept, (1 - R) * (1 - p)), (kept | top, (1 - R) * p),
                           (sent, R * (1 - p)), (sent | top, R * p)):
                P += w[..., None] * (nxt[..., None] == states)
            C = sending.astype(np.float64)[..., None]
            return P, R, C

        initial = np.zeros((n, S))
        initial[:, 0] += 1 - p
        initial[:, top] += p
        return FiniteModel(graph=self.spec.graph, n_local_states=(S,) * n,
                           n_local_actions=tuple(int(x) for x in action_dims), initial=initial,
                           transition=transition, n_costs=1)


# ------------------------------------------------------------------------------------------------
# Factories
# ------------------------------------------------------------------------------------------------

def make(cfg: Any = None, num_envs: int = 1, seed: int | None = None) -> WirelessGrid:
    """Build the game from config keys (see :class:`WirelessConfig`); unknown keys are refused."""
    return WirelessGrid(**config_values(WirelessConfig, cfg, what="wireless grid"), num_envs=num_envs, seed=seed)


def parallel_env(render_mode: str | None = None, **cfg: Any):
    """The game as a PettingZoo ``ParallelEnv`` (costs in ``infos[agent]["cost"]``)."""
    return to_parallel_env(lambda num_envs: make(cfg, num_envs=num_envs), render_mode=render_mode)
