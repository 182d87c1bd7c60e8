"""Multi-access broadcast (MABC): two transmitters share a Markov ON/OFF channel.

The model of appendix D.1 of the DADC paper (Mahajan & Mannan's decentralized stochastic control
example); facts in ``shared/specs/dadc.md``.

Model
-----
Transmitter ``j ∈ {0, 1}`` has a buffer ``B^j ∈ {0, 1}`` (size 1). The channel ``S ∈ {0 idle, 1 busy}``
is a Markov chain that stays idle with probability ``alpha0`` and stays busy with probability
``alpha1``; it is independent of the arrivals. One step ``t``:

1. each transmitter chooses ``a^j ∈ {0 wait, 1 transmit}`` (the paper's text swaps the labels; here
   1 = transmit). A transmitter with an empty buffer has nothing to send: its realised transmission
   is ``T^j = a^j · B^j`` (so "transmit" with an empty buffer is the same as "wait");
2. team reward ``R = -tx_cost (T^0 + T^1) + success_reward · (T^0 xor T^1) · (1 - S)``;
3. a packet leaves its buffer when exactly one transmitter transmits and the channel is idle;
   packets arrive with probabilities ``p^j`` (``arrival_prob_0 = 0.3``, ``arrival_prob_1 = 0.6``):
   ``B'^j = min(B^j - success^j + W^j, 1)`` (a packet arriving to a full buffer is dropped); the
   channel moves to ``S' ~ P(. | S)``.

Episodes start with ``B^j ~ Bernoulli(p^j)`` and ``S ~ Bernoulli(1 - channel_idle_init)`` (the
stationary law for the paper's ``alpha0 = alpha1``; the package's choice, see below), and last ``episode_length`` steps (truncated;
the discounted problem is infinite-horizon, ``0.9^100 ≈ 3e-5``).

Information structure (control sharing, appendix D.1)
------------------------------------------------------
Appendix D.1 says: "both the agents observe one step delayed actions (A_{t-1}^1, A_{t-1}^2) of each
other along with the state S_t of the channel if either of them transmits", with the observation
model ``T(o_t | s_t, a_{t-1})``. Which slot's channel state is revealed, and when, is open to two
readings; ``channel_timing`` picks one (the exact solver follows the same key):

* local information of transmitter ``j``: its own buffer ``B_t^j`` (``info["local_state"]``);
* ``channel_timing = "after_slot"`` (default; the package's reading): after slot ``t`` both
  transmitters learn the realised transmissions ``(T_t^0, T_t^1)`` and the channel state ``S_t`` of
  that slot **only if at least one of them transmitted** — the channel is learnt one slot late,
  never before acting, so whether a transmission succeeded is always known;
* ``channel_timing = "before_acting"`` (the literal reading of ``T(o_t | s_t, a_{t-1})``): before
  acting in slot ``t`` both learn ``(T_{t-1}^0, T_{t-1}^1)`` and the **current** channel state ``S_t``
  if at least one of them transmitted in slot ``t - 1``. The channel of the slot in which they
  transmitted is not revealed, so a success is inferred only through ``S_t``, not seen.

``info["common_obs"]`` (``[B, 4]``) at decision time ``t`` is ``(T_{t-1}^0, T_{t-1}^1, seen idle,
seen busy)``, where the channel flags refer to ``S_{t-1}`` (``after_slot``) or ``S_t``
(``before_acting``) and are both 0 when nobody transmitted in slot ``t - 1``; all zeros at ``t = 0``.
The common information holds realised transmissions ``T = a · B``: under the paper's prescriptions
("transmit if you have the opportunity and a packet") they equal the actions.
Each agent's observation is ``(B_t^j, *common_obs)`` (5 floats), so any algorithm sees exactly this
information structure. :mod:`safenet_teams.solve` uses the same one.

The initial distribution is the package's choice (the paper gives none): buffers
``B_0^j ~ Bernoulli(p^j)``, channel unseen with ``P(S_0 = idle) = channel_idle_init`` (0.5).

Exact optima (``python -m safenet_teams.solve multi_access_broadcast``, γ = 0.9, this start, infinite
horizon), per timing and prescription class (``all``: silence, either, both; ``paper``: the paper's
learner's 3, no silence): ``after_slot`` 0.976471 / 0.684432, ``before_acting`` 1.471863 / 0.818720.
With empty buffers at the start (class ``all``): 0.8788 / 1.3247; with the first channel seen:
1.1092 / 1.5544 (``docs/reports/dadc.md``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from safenet.config import config_values
from safenet.game import BatchedGame, GameSpec, StepResult, to_parallel_env
from safenet.graph import Graph

from .checks import check_int, check_nonnegative, check_num_envs, check_probability, fail

COMMON_OBS_NAMES = ("tx_0", "tx_1", "seen_idle", "seen_busy")
#: ``env.channel_timing`` values: when the common information reveals the channel (module docstring).
CHANNEL_TIMINGS = ("after_slot", "before_acting")


@dataclass
class MabcConfig:
    """Config keys of multi-access broadcast (the ``env.*`` section); defaults are the paper's."""

    arrival_prob_0: float = 0.3       # p^1: packet arrival probability of transmitter 0
    arrival_prob_1: float = 0.6       # p^2: of transmitter 1
    alpha0: float = 0.75              # P(idle -> idle)
    alpha1: float = 0.75              # P(busy -> busy)
    channel_idle_init: float = 0.5    # P(S_0 = idle)
    tx_cost: float = 0.4              # kappa: cost of each transmission
    success_reward: float = 1.0       # r: reward of a successful transmission
    episode_length: int = 100
    channel_timing: str = "after_slot"  # "after_slot": S_t learnt after slot t; "before_acting": S_t before acting

    def __post_init__(self) -> None:
        validate_config(self)


def validate_config(cfg: MabcConfig) -> None:
    for key in ("arrival_prob_0", "arrival_prob_1", "alpha0", "alpha1", "channel_idle_init"):
        check_probability(cfg, key)
    check_nonnegative(cfg, "tx_cost")
    check_nonnegative(cfg, "success_reward")
    check_int(cfg, "episode_length", 1)
    if cfg.channel_timing not in CHANNEL_TIMINGS:
        fail("channel_timing", f"must be one of {', '.join(CHANNEL_TIMINGS)}, got {cfg.channel_timing!r}")


def channel_matrix(cfg: MabcConfig) -> np.ndarray:
    """``P[s, s']``: the channel's transition matrix (0 idle, 1 busy)."""
    return np.array([[cfg.alpha0, 1.0 - cfg.alpha0], [1.0 - cfg.alpha1, cfg.alpha1]])


class MabcGame(BatchedGame):
    """``num_envs`` copies of multi-access broadcast, vectorised with numpy (see the module docstring).

    ``info`` of every reset/step holds ``local_state`` (buffers, ``[B, 2]``), ``common_obs`` (``[B, 4]``)
    and ``episode_step`` (``[B]``, the step index ``t`` the next action is for); steps also give
    ``transmitted`` (``[B, 2]``, realised) and ``channel`` (``[B]``, ``S_t`` of the step just taken).
    :meth:`state` is ``(S_t, B_t^0, B_t^1)``. Randomness comes from one local generator seeded by
    ``seed`` and re-seeded by ``reset(seed)``.
    """

    def __init__(self, cfg: MabcConfig | None = None, num_envs: int = 1, seed: int | None = None) -> None:
        cfg = MabcConfig() if cfg is None else cfg
        validate_config(cfg)
        self.cfg = cfg
        self.num_envs = B = check_num_envs(num_envs)
        self.spec = GameSpec(
            name="multi_access_broadcast", agents=("transmitter_0", "transmitter_1"), graph=Graph.complete(2),
            obs_dims=(5, 5), action_kind="discrete", action_dims=(2, 2), episode_length=int(cfg.episode_length),
            state_dim=3, common_obs_dim=4, n_local_states=(2, 2), tags=frozenset({"finite"}))
        self.arrival = np.array([cfg.arrival_prob_0, cfg.arrival_prob_1])
        self.P = channel_matrix(cfg)
        self._rng = np.random.default_rng(seed)
        self._buf = np.zeros((B, 2), dtype=np.int64)
        self._chan = np.zeros(B, dtype=np.int64)
        self._common = np.zeros((B, 4), dtype=np.float32)
        self._t = np.zeros(B, dtype=np.int64)

    # -- pieces -----------------------------------------------------------------------------------
    def _fresh(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        buf = (self._rng.random((k, 2)) < self.arrival).astype(np.int64)
        chan = (self._rng.random(k) >= self.cfg.channel_idle_init).astype(np.int64)
        return buf, chan

    def _obs(self) -> np.ndarray:
        own = self._buf.astype(np.float32)[..., None]                                  # [B, 2, 1]
        common = np.broadcast_to(self._common[:, None, :], (self.num_envs, 2, 4))
        return np.concatenate([own, common], axis=-1)

    def _info(self) -> dict[str, np.ndarray]:
        return {"local_state": self._buf.copy(), "common_obs": self._common.copy(), "episode_step": self._t.copy()}

    # -- protocol ---------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._buf, self._chan = self._fresh(self.num_envs)
        self._common[:] = 0.0
        self._t[:] = 0
        return self._obs(), self._info()

    def set_state(self, channel: Any, buffers: Any, common_obs: Any = None, t: Any = 0) -> np.ndarray:
        """Put every copy into a given state (broadcast to ``[B]``/``[B, 2]``); for tests. Returns the obs."""
        B = self.num_envs
        self._chan = np.broadcast_to(np.asarray(channel, dtype=np.int64), (B,)).copy()
        self._buf = np.broadcast_to(np.asarray(buffers, dtype=np.int64), (B, 2)).copy()
        self._common = (np.zeros((B, 4), np.float32) if common_obs is None
                        else np.broadcast_to(np.asarray(common_obs, np.float32), (B, 4)).copy())
        self._t = np.broadcast_to(np.asarray(t, dtype=np.int64), (B,)).copy()
        return self._obs()

    def step(self, actions: Any) -> StepResult:
        a = self.check_actions(actions)
        cfg, B = self.cfg, self.num_envs
        tx = a * self._buf                                                   # realised transmissions T^j
        n_tx = tx.sum(axis=1)
        idle = self._chan == 0
        success = (n_tx == 1) & idle                                          # [B]
        team = -cfg.tx_cost * n_tx + cfg.success_reward * success
        reward = np.repeat(team[:, None], 2, axis=1).astype(np.float64)
        info: dict[str, np.ndarray] = {"transmitted": tx.copy(), "channel": self._chan.copy()}
        # dynamics: departures, arrivals (dropped when the buffer is full), channel
        arrivals = (self._rng.random((B, 2)) < self.arrival).astype(np.int64)
        left = self._buf - tx * success[:, None]
        self._buf = np.minimum(left + arrivals, 1)
        stay = np.where(idle, cfg.alpha0, cfg.alpha1)
        move = self._rng.random(B) >= stay
        self._chan = np.where(move, 1 - self._chan, self._chan)
        # common information for the next decision: both transmissions, and if anyone transmitted the channel
        # of the slot just played (after_slot) or of the coming slot (before_acting)
        seen = n_tx > 0
        shown_idle = idle if self.cfg.channel_timing == "after_slot" else self._chan == 0
        self._common = np.stack([tx[:, 0], tx[:, 1], seen & shown_idle, seen & ~shown_idle], axis=1).astype(np.float32)
        self._t += 1
        truncated = self._t >= self.spec.episode_length
        terminated = np.zeros(B, dtype=bool)
        obs = self._obs()
        info.update(self._info())
        if truncated.any():
            info["final_obs"] = obs.copy()
            info["final_state"] = self.state()
            for k in ("local_state", "common_obs", "episode_step"):
                info[f"final_{k}"] = info[k].copy()
            buf, chan = self._fresh(int(truncated.sum()))
            self._buf[truncated], self._chan[truncated] = buf, chan
            self._common[truncated] = 0.0
            self._t[truncated] = 0
            obs = self._obs()
            info.update(self._info())
        return obs, reward, np.zeros((B, 2, 0)), terminated, truncated, info

    def state(self) -> np.ndarray:
        return np.concatenate([self._chan[:, None], self._buf], axis=1).astype(np.float32)


def make(cfg: Any = None, num_envs: int = 1, seed: int | None = None) -> MabcGame:
    """Build the game from config keys (see :class:`MabcConfig`); unknown keys are refused."""
    return MabcGame(MabcConfig(**config_values(MabcConfig, cfg, what="multi_access_broadcast")),
                    num_envs=num_envs, seed=seed)


def parallel_env(render_mode: str | None = None, **cfg: Any):
    """The game as a PettingZoo ``ParallelEnv``."""
    return to_parallel_env(lambda num_envs: make(cfg, num_envs=num_envs), render_mode=render_mode)
