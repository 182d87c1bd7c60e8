"""Cooperative adaptive cruise control (CACC): a platoon of vehicles behind an exogenous leader.

The game of Chu, Chinchali & Katti (ICLR 2020), as used by the DMPO papers, with safenet's safe
variant (a cost per step spent below a safe headway). All facts follow ``shared/specs/cacc.md``.

Model
-----
Vehicles ``0..n-1`` drive in a line behind a leader whose speed ``v0(t)`` is given. Vehicle ``i``
has headway ``h_i`` (gap to the vehicle ahead; vehicle 0's is to the leader), speed ``v_i`` and the
acceleration ``u_i`` it realised in the last step. Its *lead speed* ``v_lead`` is ``v0(t)`` for
vehicle 0 and ``v_{i-1}`` otherwise.

Optimal-velocity model (OVM) target speed::

    V(h) = 0                                                  h <= h_st
         = (v_max / 2) (1 - cos(pi (h - h_st) / (h_go - h_st)))   h_st < h < h_go
         = v_max                                              h >= h_go

Action ``k`` in ``Discrete(4)`` picks the OVM gains ``(alpha, beta) = ACTION_GAINS[k]`` =
``(0, 0), (0.5, 0), (0, 0.5), (0.5, 0.5)``; the command is
``u = alpha (V(h) - v) + beta (v_lead - v)``. One step (``dt`` seconds), all vehicles at once from
the current values::

    v' = clip(v + clip(u, -u_max, u_max) dt, 0, v_max)
    u  = (v' - v) / dt                                         (the realised acceleration)
    h' = h + dt/2 (v_lead + v_lead' - v - v')                  (trapezoid)

Observation (5 floats per vehicle, this order): ``(v - v*)/v*``, ``clip((v_lead - v)/5, -2, 2)``,
``clip((V(h) - v)/5, -2, 2)``, ``(h + (v_lead - v) dt - h*)/h*``, ``u/u_max`` (``u = 0`` at reset).

Reward per vehicle (raw, unscaled): ``-(h - h*)^2 - a (v - v*)^2 - b u^2`` on the new values; with
``soft_safety_term`` also ``-5 min(h - 2 h_st, 0)^2`` (the reference's training-only term).

Collision: when any headway of a copy falls below ``h_min`` the copy becomes *absorbing*: nothing
moves any more and every vehicle gets ``-collision_penalty`` that step and every later step; the
episode ends (``terminated``) at the first step count that is a multiple of
``collision_end_interval`` (60; the collision step itself counts) or at ``episode_steps``.
Otherwise episodes end by ``truncated`` after ``episode_steps`` steps.

Cost (``unsafe_headway``, one per vehicle): 1 on a step whose new headway is below
``safe_headway`` or on which the copy is collided; the per-episode sum per vehicle is constrained by
``cost_limit``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from safenet.config import config_values
from safenet.errors import ConfigError, SafenetError
from safenet.game import BatchedGame, GameSpec, StepResult, to_parallel_env
from safenet.graph import Graph

#: The OVM gains ``(alpha, beta)`` of each action, in index order.
ACTION_GAINS = np.array([(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)])
#: Default per-vehicle limit on unsafe steps per episode (see the README for how it was chosen).
DEFAULT_COST_LIMIT = 15.0
SCENARIOS = ("catchup", "slowdown")
OBS_NAMES = ("speed_error", "lead_speed_diff", "ovm_speed_diff", "headway_error", "accel")


@dataclass
class CaccConfig:
    """Config keys of the CACC platoon (the ``env.*`` section of a run config)."""

    scenario: str = "catchup"           # "catchup" or "slowdown"
    n_vehicles: int = 8                 # platoon length (agents)
    dt: float = 0.1                     # s per step
    episode_steps: int = 600            # T (60 s)
    h_min: float = 1.0                  # m; a headway below it is a collision
    h_st: float = 5.0                   # m; OVM stop headway
    h_go: float = 35.0                  # m; OVM go headway
    v_max: float = 30.0                 # m/s
    u_max: float = 2.5                  # m/s^2; |command| limit
    a: float = 1.0                      # reward weight of the speed error
    b: float = 0.1                      # reward weight of the acceleration
    collision_penalty: float = 1000.0   # G (the DMPO copies use 300)
    h_star: float = 20.0                # m; target headway
    v_star: float = 15.0                # m/s; target speed
    collision_end_interval: int = 60    # a collided episode ends at the next multiple of this many steps
    slowdown_steps: int = 300           # steps over which the slow-down leader brakes to v*
    safe_headway: float = 10.0          # m; cost 1 per step below it
    cost_limit: float = DEFAULT_COST_LIMIT  # per-vehicle limit on the per-episode count of unsafe steps
    soft_safety_term: bool = False      # add the reference's training-only -5 min(h - 2 h_st, 0)^2

    def __post_init__(self) -> None:
        validate_config(self)


def _fail(key: str, message: str) -> None:
    raise ConfigError(f"env.{key}: {message}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)) and bool(np.isfinite(v))


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def validate_config(cfg: CaccConfig) -> None:
    """Check every key of ``cfg``; raises :class:`~safenet.errors.ConfigError` naming the bad key."""
    if cfg.scenario not in SCENARIOS:
        _fail("scenario", f"must be one of {', '.join(SCENARIOS)}, got {cfg.scenario!r}")
    for key, low in (("n_vehicles", 1), ("episode_steps", 1), ("collision_end_interval", 1), ("slowdown_steps", 1)):
        v = getattr(cfg, key)
        if not _is_int(v) or v < low:
            _fail(key, f"must be an integer >= {low}, got {v!r}")
    for key in ("dt", "v_max", "u_max", "h_star", "v_star"):
        v = getattr(cfg, key)
        if not _is_number(v) or v <= 0:
            _fail(key, f"must be a number > 0, got {v!r}")
    for key in ("h_min", "h_st", "a", "b", "collision_penalty", "safe_headway", "cost_limit"):
        v = getattr(cfg, key)
        if not _is_number(v) or v < 0:
            _fail(key, f"must be a number >= 0, got {v!r}")
    if not _is_number(cfg.h_go) or cfg.h_go <= cfg.h_st:
        _fail("h_go", f"must be a number > h_st ({cfg.h_st}), got {cfg.h_go!r}")
    if cfg.v_star > cfg.v_max:
        _fail("v_star", f"must be <= v_max ({cfg.v_max}), got {cfg.v_star}")
    if not isinstance(cfg.soft_safety_term, (bool, np.bool_)):
        _fail("soft_safety_term", f"must be true or false, got {cfg.soft_safety_term!r}")


def optimal_velocity(h: np.ndarray | float, h_st: float = 5.0, h_go: float = 35.0, v_max: float = 30.0) -> np.ndarray:
    """The OVM target speed ``V(h)`` (elementwise)."""
    h = np.asarray(h, dtype=np.float64)
    x = np.minimum(np.maximum((h - h_st) * (1.0 / (h_go - h_st)), 0.0), 1.0)
    return 0.5 * v_max * (1.0 - np.cos(np.pi * x))


class CaccGame(BatchedGame):
    """``num_envs`` copies of the CACC platoon, stepped with vectorised numpy.

    See the module docstring for the model. ``info`` of every reset and step carries ``headway``,
    ``velocity`` and ``accel`` (``[B, n]``, the new values), ``leader_speed`` (``[B]``) and
    ``collided`` (``[B]``, the copy is absorbing); on a step where some copy's episode ended, the
    same keys with a ``final_`` prefix (and ``final_obs``, ``final_state``) hold the ended episode's
    last values. :meth:`state` is ``[B, 2n + 2]``: ``(h - h*)/h*`` of every vehicle, then
    ``(v - v*)/v*`` of every vehicle, then the leader's ``(v0 - v*)/v*`` and the episode clock
    ``t / episode_steps``.

    Randomness (only the initial condition) comes from one local ``np.random.Generator`` seeded by
    the constructor's ``seed`` and re-seeded by ``reset(seed)``; the global numpy seed is not used.
    """

    def __init__(self, cfg: CaccConfig | None = None, num_envs: int = 1, seed: int | None = None) -> None:
        cfg = CaccConfig() if cfg is None else cfg
        validate_config(cfg)
        if not _is_int(num_envs) or num_envs < 1:
            raise SafenetError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.cfg = cfg
        self.num_envs = B = int(num_envs)
        n = self.n_vehicles = int(cfg.n_vehicles)
        self.spec = GameSpec(
            name=f"cacc_{cfg.scenario}", agents=tuple(f"vehicle_{i}" for i in range(n)), graph=Graph.line(n),
            obs_dims=(5,) * n, action_kind="discrete", action_dims=(4,) * n, episode_length=int(cfg.episode_steps),
            n_costs=(1,) * n, cost_limits=((float(cfg.cost_limit),),) * n, cost_names=("unsafe_headway",),
            state_dim=2 * n + 2)
        self._alpha = np.ascontiguousarray(ACTION_GAINS[:, 0])
        self._beta = np.ascontiguousarray(ACTION_GAINS[:, 1])
        self._rng = np.random.default_rng(seed)
        self._h: np.ndarray | None = None             # headways [B, n]
        self._v = np.zeros((B, n))                    # speeds [B, n]
        self._u = np.zeros((B, n))                    # realised accelerations [B, n]
        self._v0_start = np.full(B, float(cfg.v_star))  # leader speed at t = 0 [B]
        self._t = np.zeros(B, dtype=np.int64)         # steps taken in the current episode
        self._collided = np.zeros(B, dtype=bool)
        self._v0 = np.full(B, float(cfg.v_star))     # current leader speed [B] (cache of leader_speed(t))
        self._Vh = np.zeros((B, n))                   # cache of V(h) for the current headways

    # -- model pieces ---------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.spec.n

    def ovm(self, h: np.ndarray) -> np.ndarray:
        c = self.cfg
        return optimal_velocity(h, c.h_st, c.h_go, c.v_max)

    def leader_speed(self, t: np.ndarray | int, v0_start: np.ndarray | float | None = None) -> np.ndarray:
        """Leader speed ``v0`` after ``t`` steps (per copy): constant ``v*`` in catch-up; in slow-down
        the reference's ``linspace(v0(0), v*, slowdown_steps)[t]`` (``v*`` reached at step
        ``slowdown_steps - 1``), then ``v*``."""
        c = self.cfg
        v0s = self._v0_start if v0_start is None else np.asarray(v0_start, dtype=np.float64)
        frac = np.maximum(0.0, 1.0 - np.asarray(t, dtype=np.float64) / max(c.slowdown_steps - 1, 1))
        return c.v_star + (v0s - c.v_star) * frac

    def _initial(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``k`` fresh initial conditions: headways ``[k, n]``, speeds ``[k, n]``, leader start speed ``[k]``."""
        c, n = self.cfg, self.n
        draw = self._rng.random(k)
        h = np.full((k, n), float(c.h_star))
        v = np.full((k, n), float(c.v_star))
        if c.scenario == "catchup":
            h[:, 0] = c.h_star * (1.5 + draw)
            v0 = np.full(k, float(c.v_star))
        else:
            v0 = c.v_star * (1.5 + draw)
            v[:] = v0[:, None]
        return h, v, v0

    def _refresh(self) -> None:
        """Recompute the caches (leader speed, V(h)) after the state was replaced."""
        self._v0 = self.leader_speed(self._t)
        self._Vh = self.ovm(self._h)

    def _obs(self) -> np.ndarray:
        c = self.cfg
        h, v, u = self._h, self._v, self._u
        v_lead = np.empty_like(v)
        v_lead[:, 0] = self._v0
        v_lead[:, 1:] = v[:, :-1]
        obs = np.empty(v.shape + (5,), dtype=np.float32)
        dv = v_lead - v
        obs[..., 0] = (v - c.v_star) / c.v_star
        obs[..., 1] = np.minimum(np.maximum(dv / 5.0, -2.0), 2.0)
        obs[..., 2] = np.minimum(np.maximum((self._Vh - v) / 5.0, -2.0), 2.0)
        obs[..., 3] = (h + dv * c.dt - c.h_star) / c.h_star
        obs[..., 4] = u / c.u_max
        return obs

    def _state(self) -> np.ndarray:
        c = self.cfg
        return np.concatenate([(self._h - c.h_star) / c.h_star, (self._v - c.v_star) / c.v_star,
                               ((self._v0 - c.v_star) / c.v_star)[:, None],
                               (self._t / c.episode_steps)[:, None]], axis=1).astype(np.float32)

    def _info(self) -> dict[str, np.ndarray]:
        return {"headway": self._h.copy(), "velocity": self._v.copy(), "accel": self._u.copy(),
                "leader_speed": self._v0.copy(), "collided": self._collided.copy()}

    # -- protocol -------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._h, self._v, self._v0_start = self._initial(self.num_envs)
        self._u = np.zeros_like(self._v)
        self._t[:] = 0
        self._collided[:] = False
        self._refresh()
        return self._obs(), self._info()

    def set_state(self, headway: Any, velocity: Any, accel: Any = None, leader_start: Any = None,
                  t: Any = 0) -> np.ndarray:
        """Put every copy into a given state (``[n]`` or ``[B, n]`` arrays; ``leader_start`` is the leader's
        speed at ``t = 0``, default ``v*``); clears collisions. For tests and analysis; returns the obs."""
        B, n = self.num_envs, self.n

        def arr(x: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
            x = np.asarray(x, dtype=np.float64)
            try:
                return np.broadcast_to(x, shape).copy()
            except ValueError:
                raise SafenetError(f"{self.spec.name}: set_state {name} must broadcast to {shape}, got {x.shape}") from None

        self._h = arr(headway, (B, n), "headway")
        self._v = arr(velocity, (B, n), "velocity")
        self._u = arr(0.0 if accel is None else accel, (B, n), "accel")
        self._v0_start = arr(self.cfg.v_star if leader_start is None else leader_start, (B,), "leader_start")
        self._t[:] = np.broadcast_to(np.asarray(t, dtype=np.int64), (B,))
        self._collided[:] = False
        self._refresh()
        return self._obs()

    def step(self, actions: Any) -> StepResult:
        if self._h is None:
            raise SafenetError(f"{self.spec.name}: call reset() before step()")
        act = self.check_actions(actions)
        c = self.cfg
        h, v = self._h, self._v
        alive = ~self._collided                                            # [B]
        # -- one OVM step for every copy (collided copies are frozen below) ---------------------
        v0_now = self._v0
        t_next = self._t + 1
        v0_next = self.leader_speed(t_next)
        v_lead = np.empty_like(v)
        v_lead[:, 0] = v0_now
        v_lead[:, 1:] = v[:, :-1]
        cmd = self._alpha[act] * (self._Vh - v) + self._beta[act] * (v_lead - v)
        v_new = np.minimum(np.maximum(v + np.minimum(np.maximum(cmd, -c.u_max), c.u_max) * c.dt, 0.0), c.v_max)
        u_new = (v_new - v) / c.dt
        lead_sum = v_lead                                                  # v_lead + v_lead', in place
        lead_sum[:, 0] += v0_next
        lead_sum[:, 1:] += v_new[:, :-1]
        h_new = h + 0.5 * c.dt * (lead_sum - v - v_new)
        if not alive.all():
            keep = ~alive[:, None]
            h_new = np.where(keep, h, h_new)
            v_new = np.where(keep, v, v_new)
            u_new = np.where(keep, self._u, u_new)
            v0_next = np.where(alive, v0_next, v0_now)                     # the leader freezes too
        crash = alive & (h_new < c.h_min).any(axis=1)
        collided = self._collided | crash
        self._h, self._v, self._u, self._t, self._collided = h_new, v_new, u_new, t_next, collided
        self._v0, self._Vh = v0_next, self.ovm(h_new)
        # -- reward and cost --------------------------------------------------------------------
        reward = -(h_new - c.h_star) ** 2 - c.a * (v_new - c.v_star) ** 2 - c.b * u_new ** 2
        if c.soft_safety_term:
            reward -= 5.0 * np.minimum(h_new - 2.0 * c.h_st, 0.0) ** 2
        unsafe = h_new < c.safe_headway
        if collided.any():
            reward[collided] = -c.collision_penalty
            unsafe[collided] = True
        cost = unsafe.astype(np.float32)[:, :, None]
        # -- episode ends -----------------------------------------------------------------------
        at_end = t_next >= c.episode_steps
        terminated = collided & ((t_next % c.collision_end_interval == 0) | at_end)
        truncated = at_end & ~terminated
        done = terminated | truncated
        obs = self._obs()
        info: dict[str, Any] = {}
        if done.any():
            info["final_obs"] = obs
            info["final_state"] = self._state()
            for key, val in self._info().items():
                info[f"final_{key}"] = val
            k = int(done.sum())
            h0, v0, v0s = self._initial(k)
            self._h[done], self._v[done], self._v0_start[done] = h0, v0, v0s
            self._u[done] = 0.0
            self._t[done] = 0
            self._collided[done] = False
            self._v0[done] = v0s                                           # t = 0: the leader's start speed
            self._Vh[done] = self.ovm(h0)
            obs = self._obs()
        info.update(self._info())
        return obs, reward, cost, terminated, truncated, info

    def state(self) -> np.ndarray:
        """``[B, 2n + 2]``: normalised headways, normalised speeds, leader speed, episode clock."""
        if self._h is None:
            raise SafenetError(f"{self.spec.name}: call reset() before state()")
        return self._state()


# ------------------------------------------------------------------------------------------------
# Factories
# ------------------------------------------------------------------------------------------------

def make(cfg: Any = None, num_envs: int = 1, seed: int | None = None) -> CaccGame:
    """Build the game from config keys (see :class:`CaccConfig`); unknown keys are refused."""
    return CaccGame(CaccConfig(**config_values(CaccConfig, cfg, what="CACC")), num_envs=num_envs, seed=seed)


def parallel_env(render_mode: str | None = None, **cfg: Any):
    """The game as a PettingZoo ``ParallelEnv`` (costs in ``infos[agent]["cost"]``)."""
    return to_parallel_env(lambda num_envs: make(cfg, num_envs=num_envs), render_mode=render_mode)
