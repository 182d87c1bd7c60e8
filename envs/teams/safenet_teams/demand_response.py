"""Demand response with mean-field sharing: ``n`` ON/OFF devices steered towards a target mix.

The model of appendix D.2 of the DADC paper (Arabneydi & Mahajan's mean-field team); facts in
``shared/specs/dadc.md``.

Model
-----
Device ``i`` has a local state ``s_i ∈ {0 OFF, 1 ON}`` and chooses an action in ``Discrete(3)``:

====  ===========  ==============================================================
 a    paper         next state
====  ===========  ==============================================================
 0    ∅             natural dynamics ``D[s]`` (``D = [[0.25, 0.75], [0.375, 0.625]]``)
 1    0 (OFF)       ``(1 - eps_off) [1, 0] + eps_off D[s]``  (cost ``cost_off = 0.1``)
 2    1 (ON)        ``(1 - eps_on) [0, 1] + eps_on D[s]``    (cost ``cost_on = 0.2``)
====  ===========  ==============================================================

Devices move independently given their actions. With ``M_t = (1 - k_t/n, k_t/n)`` the empirical
distribution (``k_t`` devices ON), the team reward of step ``t`` (every device gets it) is
``R_t = -[(1/n) Σ_i c(a_i) + KL(M_t ‖ ζ)]`` with ``ζ = (1 - target_on, target_on) = (0.7, 0.3)`` and
``0 log 0 = 0``. Devices start ON with probability ``init_on = 2/3``; episodes last
``episode_length`` steps (truncated).

Information structure (mean-field sharing)
------------------------------------------
* local information of device ``i``: ``s_i`` (``info["local_state"]``);
* common information: the mean field ``M_t`` (``info["common_obs"]``, ``[B, 2]``), seen before acting.

Each device's observation is ``(one-hot s_i, M_t)`` (4 floats). The game is tagged ``exchangeable``:
devices are interchangeable (same spaces, symmetric dynamics and reward).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from safenet.config import config_values
from safenet.game import BatchedGame, GameSpec, StepResult, to_parallel_env
from safenet.graph import Graph

from .checks import check_int, check_nonnegative, check_num_envs, check_probability

ACTION_NAMES = ("natural", "force_off", "force_on")


@dataclass
class DemandResponseConfig:
    """Config keys of demand response (the ``env.*`` section); defaults are the paper's."""

    n_devices: int = 100
    p_on_from_off: float = 0.75       # D[0, 1]: natural P(ON next | OFF)
    p_on_from_on: float = 0.625       # D[1, 1]: natural P(ON next | ON)
    eps_off: float = 0.2              # eps_1: forcing OFF fails (natural dynamics instead)
    eps_on: float = 0.2               # eps_2: forcing ON fails
    cost_off: float = 0.1             # c_0
    cost_on: float = 0.2              # c_1
    target_on: float = 0.3            # zeta = (1 - target_on, target_on)
    init_on: float = 2.0 / 3.0        # P(device ON at t = 0)
    episode_length: int = 100

    def __post_init__(self) -> None:
        validate_config(self)


def validate_config(cfg: DemandResponseConfig) -> None:
    check_int(cfg, "n_devices", 1)
    for key in ("p_on_from_off", "p_on_from_on", "eps_off", "eps_on", "init_on"):
        check_probability(cfg, key)
    check_probability(cfg, "target_on", open_low=True, open_high=True)
    check_nonnegative(cfg, "cost_off")
    check_nonnegative(cfg, "cost_on")
    check_int(cfg, "episode_length", 1)


def on_probability(cfg: DemandResponseConfig) -> np.ndarray:
    """``p[s, a]`` = P(ON next | state s, action a) for actions (natural, force OFF, force ON)."""
    nat = np.array([cfg.p_on_from_off, cfg.p_on_from_on])
    return np.stack([nat, cfg.eps_off * nat, (1.0 - cfg.eps_on) + cfg.eps_on * nat], axis=1)


def action_costs(cfg: DemandResponseConfig) -> np.ndarray:
    return np.array([0.0, cfg.cost_off, cfg.cost_on])


def kl_to_target(frac_on: np.ndarray, target_on: float) -> np.ndarray:
    """``KL(M ‖ ζ)`` for ``M = (1 - frac_on, frac_on)``, ``0 log 0 = 0``."""
    m = np.stack([1.0 - np.asarray(frac_on, dtype=np.float64), np.asarray(frac_on, dtype=np.float64)], axis=-1)
    z = np.array([1.0 - target_on, target_on])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(m > 0, m * np.log(np.where(m > 0, m, 1.0) / z), 0.0)
    return terms.sum(-1)


class DemandResponseGame(BatchedGame):
    """``num_envs`` copies of the demand-response team, vectorised with numpy.

    ``info`` of every reset/step holds ``local_state`` (``[B, n]``), ``common_obs`` (``[B, 2]``: the
    mean field) and ``episode_step`` (``[B]``). :meth:`state` is every device's state (``[B, n]``).
    """

    def __init__(self, cfg: DemandResponseConfig | None = None, num_envs: int = 1, seed: int | None = None) -> None:
        cfg = DemandResponseConfig() if cfg is None else cfg
        validate_config(cfg)
        self.cfg = cfg
        self.num_envs = B = check_num_envs(num_envs)
        n = self.n = int(cfg.n_devices)
        self.spec = GameSpec(
            name="demand_response", agents=tuple(f"device_{i}" for i in range(n)), graph=Graph.complete(n),
            obs_dims=(4,) * n, action_kind="discrete", action_dims=(3,) * n, episode_length=int(cfg.episode_length),
            state_dim=n, common_obs_dim=2, n_local_states=(2,) * n, tags=frozenset({"finite", "exchangeable"}))
        self.p_on = on_probability(cfg)
        self.costs = action_costs(cfg)
        self._rng = np.random.default_rng(seed)
        self._s = np.zeros((B, n), dtype=np.int64)
        self._t = np.zeros(B, dtype=np.int64)

    def _fresh(self, k: int) -> np.ndarray:
        return (self._rng.random((k, self.n)) < self.cfg.init_on).astype(np.int64)

    def mean_field(self) -> np.ndarray:
        on = self._s.mean(axis=1)
        return np.stack([1.0 - on, on], axis=1).astype(np.float32)

    def _obs(self) -> np.ndarray:
        own = np.eye(2, dtype=np.float32)[self._s]                                   # [B, n, 2]
        mf = np.broadcast_to(self.mean_field()[:, None, :], own.shape)
        return np.concatenate([own, mf], axis=-1)

    def _info(self) -> dict[str, np.ndarray]:
        return {"local_state": self._s.copy(), "common_obs": self.mean_field(), "episode_step": self._t.copy()}

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._s = self._fresh(self.num_envs)
        self._t[:] = 0
        return self._obs(), self._info()

    def set_state(self, states: Any, t: Any = 0) -> np.ndarray:
        """Put every copy into given device states (broadcast to ``[B, n]``); for tests. Returns the obs."""
        self._s = np.broadcast_to(np.asarray(states, dtype=np.int64), (self.num_envs, self.n)).copy()
        self._t = np.broadcast_to(np.asarray(t, dtype=np.int64), (self.num_envs,)).copy()
        return self._obs()

    def step(self, actions: Any) -> StepResult:
        a = self.check_actions(actions)
        B, cfg = self.num_envs, self.cfg
        frac_on = self._s.mean(axis=1)
        team = -(self.costs[a].mean(axis=1) + kl_to_target(frac_on, cfg.target_on))
        reward = np.repeat(team[:, None], self.n, axis=1)
        self._s = (self._rng.random((B, self.n)) < self.p_on[self._s, a]).astype(np.int64)
        self._t += 1
        truncated = self._t >= self.spec.episode_length
        obs = self._obs()
        info = self._info()
        if truncated.any():
            info["final_obs"] = obs.copy()
            info["final_state"] = self.state()
            for k in ("local_state", "common_obs", "episode_step"):
                info[f"final_{k}"] = info[k].copy()
            self._s[truncated] = self._fresh(int(truncated.sum()))
            self._t[truncated] = 0
            obs = self._obs()
            info.update(self._info())
        return obs, reward, np.zeros((B, self.n, 0)), np.zeros(B, dtype=bool), truncated, info

    def state(self) -> np.ndarray:
        return self._s.astype(np.float32)


def make(cfg: Any = None, num_envs: int = 1, seed: int | None = None) -> DemandResponseGame:
    """Build the game from config keys (see :class:`DemandResponseConfig`); unknown keys are refused."""
    return DemandResponseGame(DemandResponseConfig(**config_values(DemandResponseConfig, cfg, what="demand_response")),
                              num_envs=num_envs, seed=seed)


def parallel_env(render_mode: str | None = None, **cfg: Any):
    """The game as a PettingZoo ``ParallelEnv``."""
    return to_parallel_env(lambda num_envs: make(cfg, num_envs=num_envs), render_mode=render_mode)
