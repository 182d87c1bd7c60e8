"""The Safe MAMuJoCo game: B copies of a multi-agent MuJoCo robot (``safenet.BatchedGame``).

One step, for all copies at once (no Python loop over agents):

1. check the actions ``[B, n, a]`` (shape; NaN/inf refused before the simulation is touched, found
   through the sum of squares the control cost needs anyway) and put them in actuator order;
2. step the copies (``sim.Simulator``: Gymnasium's ``mj_step`` semantics, a thread pool for batches);
   each copy writes its new state into its *source row* (``layout.SourceLayout``);
3. task features, reward, health and cost from a few columns of the source rows (``columns``: numpy
   expressions over ``[B]`` for a batch, plain floats for a single copy), written back into the rows;
4. observations, global state, rewards and costs of all agents: one gather from the source rows with one
   precomputed index, into one fresh float32 array the outputs are views of. Copies whose episode ended
   are reset (``info["final_obs"]``, ``info["final_state"]``).

Rewards (Gymnasium v5 / MaMuJoCo, shared by all agents): ant robots
``vx + 1[healthy] - 0.5 |a|^2 - 5e-4 |clip(cfrc_ext, -1, 1)|^2``; HalfCheetah ``vx - 0.1 |a|^2``;
Coupled HalfCheetah the mean of both cheetahs' ``vx - 0.1 |a_k|^2``; Hopper / Walker2d
``vx + 1[healthy] - 1e-3 |a|^2``; Swimmer ``vx - 1e-4 |a|^2``.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from safenet.config import config_values
from safenet.copies import CopyRNG
from safenet.errors import SafenetError
from safenet.game import BatchedGame, GameSpec, StepResult, to_parallel_env

from . import models
from .columns import Columns, columns_for
from .config import FAMILIES, MamujocoConfig
from .layout import (SourceLayout, agent_graph, hop_rings, joint_adjacency, observation_index, state_index)
from .robots import make_robot
from .gl import INSTALL_HINT, NoRenderingBackend, offscreen_context
from .sim import Simulator, mujoco

CTRL_COST = {"ant": 0.5, "cheetah": 0.1, "coupled": 0.1, "hopper": 1e-3, "walker": 1e-3, "swimmer": 1e-4}
CONTACT_COST = 5e-4            # ant robots, on clip(cfrc_ext, -1, 1)
HEALTHY_REWARD = 1.0           # ant, hopper, walker
CORRIDOR_MARGIN = 1.8          # cost within this distance of a wall (spec)
BOMB_RADIUS = 5.0              # cost when a torso is within this distance of the bomb in x


def bomb_control(t: np.ndarray | float) -> np.ndarray | float:
    """Open-loop push on the bomb's slide joint at simulation time ``t`` (seconds; an array or a float)."""
    s = math.sin(t / 3.0) if isinstance(t, float) else np.sin(np.asarray(t) / 3.0)
    return 0.02 * s * s - 0.004


class MamujocoGame(BatchedGame):
    """``num_envs`` copies of one Safe MAMuJoCo task (see the package README for the task table).

    ``hops`` (tests and advanced use) replaces each agent's observed joint rings, e.g. to reproduce
    another library's observation layout; by default they come from the joint graph and ``agent_obsk``.
    """

    per_copy_seeds = True                                     # reset takes per-copy seeds (safenet.copies)

    def __init__(self, cfg: MamujocoConfig | None = None, num_envs: int = 1, seed: int | None = None,
                 hops: list[list[list[str]]] | None = None) -> None:
        cfg = MamujocoConfig() if cfg is None else cfg
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise SafenetError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.cfg = cfg
        self.num_envs = B = int(num_envs)
        self.family = fam = FAMILIES[cfg.family]
        self.robot, self.parts = robot, parts = make_robot(fam.robot, cfg.partition)
        self.task_name = fam.name(cfg.family, cfg.partition)
        # -- model -------------------------------------------------------------------------------
        kw: dict[str, Any] = {}
        if robot.kind == "ant":
            kw["walls"] = models.zigzag_walls(fam.wall_offset) if fam.scenario == "corridor" and cfg.walls else None
            if fam.timestep is not None:
                kw["timestep"] = fam.timestep
        if robot.kind == "coupled":
            kw["bomb"] = fam.scenario == "bomb"
        self.model = m = mujoco.MjModel.from_xml_string(robot.xml(**kw))
        if robot.total_mass is not None:
            mujoco.mj_setTotalmass(m, robot.total_mass)
            mujoco.mj_setConst(m, mujoco.MjData(m))
        m.vis.global_.offwidth = max(m.vis.global_.offwidth, cfg.render_width)
        m.vis.global_.offheight = max(m.vis.global_.offheight, cfg.render_height)
        self.frame_skip = fam.frame_skip or robot.frame_skip
        self.dt = float(m.opt.timestep) * self.frame_skip
        # -- agents, graph, source row and observation layout -----------------------------------------
        adj = joint_adjacency(robot)
        n = len(parts)
        self.rings = hops if hops is not None else [hop_rings(p, adj, cfg.agent_obsk) for p in parts]
        bomb = fam.scenario == "bomb"
        uses_cfrc = "cfrc_ext" in {c for cats in robot.local_categories for c in cats}
        self.layout = lay = SourceLayout(m.nq, m.nv, n_cfrc_bodies=m.nbody if uses_cfrc else 0,
                                         n_track=2 if robot.kind == "ant" else 0, time=bomb, tendon=bomb,
                                         n_features={"corridor": 2, "bomb": 4}.get(fam.scenario, 0))
        feats = list(range(lay.features, lay.features + lay.n_features))
        if bomb:   # the tendon's length and velocity are the last two bomb features
            feats += [lay.tendon_at, lay.tendon_at + 1]
        self.obs_index, obs_dims = observation_index(m, robot, self.rings, lay, feats)
        self.state_idx = state_index(m, robot, lay, feats)
        self._adr = lambda name: int(m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)])
        self._dof = lambda name: int(m.jnt_dofadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)])
        if bomb:   # source columns the bomb features read every step
            self._bomb_cols = (self._adr("bomb_slide"), lay.qvel + self._dof("bomb_slide"), self._adr("rootx0"),
                               self._adr("rootx1"))
        self._ref_cols = self._reference_columns()
        # actions: agent i's slot k drives the actuator of its k-th joint; agents' actuators come first
        act_of_joint = {mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, int(m.actuator_trnid[a, 0])): a
                        for a in range(m.nu)}
        a_max = max(len(p) for p in parts)
        cols, src = [], []
        for i, part in enumerate(parts):
            for k, joint in enumerate(part):
                cols.append(act_of_joint[joint])
                src.append(i * a_max + k)
        if sorted(cols) != list(range(len(cols))):
            raise SafenetError(f"{self.task_name}: the agents' actuators must be the model's first {len(cols)}")
        self._act_src = np.asarray(src, dtype=np.intp)[np.argsort(cols)]      # flat action slot of each actuator
        self._act_identity = bool(np.array_equal(self._act_src, np.arange(n * a_max)))
        self._padded = len(cols) < n * a_max
        # coupled: the mean of both cheetahs' 0.1 |a_k|^2 is 0.05 times the sum of squares of all actions
        self._ctrl_weight = CTRL_COST[robot.kind] * (0.5 if robot.kind == "coupled" else 1.0)
        bomb_act = act_of_joint.get("bomb_slide")
        # cost limit and spec
        limit = fam.cost_limit if cfg.cost_limit is None else float(cfg.cost_limit)
        constrained = fam.scenario != "none"
        self.velocity_threshold = (cfg.velocity_threshold if cfg.velocity_threshold is not None
                                   else dict(fam.thresholds).get(cfg.partition))
        joint_names = ["_".join(p) if len(p) <= 2 else f"{p[0]}..{p[-1]}" for p in parts]
        self.spec = GameSpec(
            name=self.task_name, agents=tuple(f"agent_{i}" for i in range(n)), graph=agent_graph(parts, adj),
            obs_dims=obs_dims, action_kind="continuous", action_dims=tuple(len(p) for p in parts),
            episode_length=int(cfg.episode_length), n_costs=(1 if constrained else 0,) * n,
            cost_limits=((limit,),) * n if constrained else None,
            cost_names=(fam.scenario if fam.scenario != "corridor" else "wall",) if constrained else (),
            action_low=-1.0, action_high=1.0, state_dim=len(self.state_idx))
        self.agent_joints = dict(zip(self.spec.agents, parts))
        self.joint_labels = joint_names
        self._action_shape = (B, n, a_max)
        # -- the rules' constants, looked up once (the single copy's step is a few µs of Python) ---------
        self._kind, self._scenario, self._nqv = robot.kind, fam.scenario, m.nq + m.nv
        self._health_rule = robot.kind in ("ant", "hopper", "walker")
        self._terminates = cfg.terminate_when_unhealthy and self._health_rule
        self._z_range, self._upside_down_unhealthy = robot.healthy_z, fam.upside_down_unhealthy
        self._x_velocity_only = fam.x_velocity_only
        self._corridor_limit = fam.wall_offset - CORRIDOR_MARGIN
        # -- outputs: gathers from the source rows, index arrays shaped like the outputs -------------
        self._reward_index = np.full(n, lay.reward, dtype=np.intp)
        self._cost_index = np.full((n, 1 if constrained else 0), lay.cost, dtype=np.intp)
        # -- batched state ----------------------------------------------------------------------
        self.src = np.zeros((B, lay.size))
        self._src32 = np.zeros((B, lay.size), dtype=np.float32)   # float32 copy the outputs are gathered from
        self._cfrc_block = self.src[:, lay.cfrc: lay.track]
        self._cols: Columns = columns_for(self.src)
        track = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, robot.main_body) if robot.kind == "ant" else None
        self.sim = Simulator(m, self.frame_skip, cfg.threads, self.src, lay, n_controls=len(cols), track_body=track,
                             clock_control=(bomb_act, bomb_control) if bomb_act is not None else None)
        self._rng = CopyRNG.for_batch(seed, B)       # one generator per copy (safenet.copies)
        self._t = np.zeros(B, dtype=np.int64)
        self._ready = False
        self._renderer = None
        self._last_state: np.ndarray | None = None

    # -- pieces ------------------------------------------------------------------------------------
    def _reference_columns(self) -> list[int]:
        """Source columns whose displacement over ``dt`` is the velocity (x first)."""
        kind = self.robot.kind
        if kind == "ant":      # the torso body's x, y (Gymnasium reads xpos, not the free joint's qpos)
            return [self.layout.track, self.layout.track + 1]
        if kind == "coupled":
            return [self._adr("rootx0"), self._adr("rootx1")]
        if kind == "swimmer":
            return [self._adr("slider1"), self._adr("slider2")]
        return [self._adr("rootx")]     # cheetah, hopper, walker

    def _healthy(self, c: Columns):
        if self._kind == "ant":
            z = c.get(2)
            ok = c.rows_finite(0, self._nqv) & (z >= self._z_range[0]) & (z <= self._z_range[1])
            if self._upside_down_unhealthy:     # torso z axis: 1 - 2 (q1^2 + q2^2) from its quaternion
                q1, q2 = c.get(4), c.get(5)
                ok = ok & (1.0 - 2.0 * (q1 * q1 + q2 * q2) >= -0.7)
            return ok
        z, angle = c.get(1), c.get(2)
        (z_lo, z_hi), (a_lo, a_hi) = self._z_range, self.robot.healthy_angle
        ok = (z > z_lo) & (z < z_hi) & (angle > a_lo) & (angle < a_hi)
        if self._kind == "hopper":          # every other position and velocity within +-100
            ok = ok & c.rows_within(2, self._nqv, 100.0)
        return ok

    def _features(self, c: Columns) -> None:
        """Write the task features into the source rows (corridor position, bomb state)."""
        f = self.layout.features
        if self._scenario == "corridor":
            x = c.get(0)
            c.put(f, x / 5.0)
            c.put(f + 1, c.get(1) - models.corridor_centre(x))
        elif self._scenario == "bomb":
            slide, slide_v, x0, x1 = self._bomb_cols
            xb = models.BOMB_START + c.get(slide)
            c.put(f, c.get(slide_v))
            c.put(f + 1, bomb_control(c.get(self.layout.clock)))
            c.put(f + 2, c.clip((xb - c.get(x0)) * 0.1, -5.0, 5.0))
            c.put(f + 3, c.clip((xb - c.get(x1)) * 0.1, -5.0, 5.0))

    def _outcome(self, c: Columns, before: list, ctrl_sq):
        """``(reward, unsafe, healthy, x velocity)`` of every copy after a step (features already written)."""
        kind, scenario, dt = self._kind, self._scenario, self.dt
        vx = (c.get(self._ref_cols[0]) - before[0]) / dt
        vy = (c.get(self._ref_cols[1]) - before[1]) / dt if len(before) > 1 else None   # ant: y; coupled: 2nd x
        reward = ((vx + vy) / 2.0 if kind == "coupled" else vx) - self._ctrl_weight * ctrl_sq
        healthy = True
        if self._health_rule:
            healthy = self._healthy(c)
            reward = reward + HEALTHY_REWARD * healthy
        if kind == "ant":
            reward = reward - CONTACT_COST * c.sumsq(self._cfrc_block)
        if scenario == "velocity":
            # safety-gymnasium's definition: Swimmer's cost is on the signed x velocity (swimming backwards
            # costs nothing); the others' on the planar speed, or |vx| where the robot has no y
            speed = vx if self._x_velocity_only else abs(vx) if vy is None else c.sqrt(vx * vx + vy * vy)
            unsafe = speed > self.velocity_threshold
        elif scenario == "corridor":
            unsafe = (abs(c.get(self.layout.features + 1)) > self._corridor_limit) | c.not_(healthy)
        elif scenario == "bomb":
            slide, _, x0, x1 = self._bomb_cols
            xb = models.BOMB_START + c.get(slide)
            unsafe = (abs(xb - c.get(x0)) < BOMB_RADIUS) | (abs(xb - c.get(x1)) < BOMB_RADIUS)
        else:
            unsafe = False
        return reward, unsafe, healthy, vx

    def _bomb_x(self) -> np.ndarray:
        return models.BOMB_START + self.src[:, self._bomb_cols[0]]

    def _observe(self) -> tuple[np.ndarray, np.ndarray]:
        """Observations ``[B, n, o]`` and global state ``[B, S]``: fresh float32 arrays gathered from the rows."""
        np.copyto(self._src32, self.src)
        obs, state = self._src32.take(self.obs_index, axis=1), self._src32.take(self.state_idx, axis=1)
        self._last_state = state
        return obs, state

    def _fresh(self, copies: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Gymnasium's initial-state noise around the model's rest pose, for ``copies`` (default: all),
        each from its own generator."""
        m, s = self.model, (self.cfg.reset_noise_scale if self.cfg.reset_noise_scale is not None
                            else self.robot.reset_noise)
        qpos = m.qpos0[None, :] + self._rng.uniform(-s, s, (m.nq,), copies)
        if self.robot.qvel_noise == "normal":
            qvel = s * self._rng.standard_normal((m.nv,), copies)
        else:
            qvel = self._rng.uniform(-s, s, (m.nv,), copies)
        return qpos, qvel

    # -- protocol ----------------------------------------------------------------------------------
    def reset(self, seed: int | Sequence[int] | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._rng = CopyRNG.for_batch(seed, self.num_envs)
        qpos, qvel = self._fresh()
        obs = self.set_state(qpos, qvel)
        return obs, {"state": self.state()}

    def set_state(self, qpos: Any, qvel: Any) -> np.ndarray:
        """Put every copy in state ``(qpos, qvel)`` (``[nq]``/``[nv]`` or per copy); returns the observations."""
        m, B = self.model, self.num_envs
        try:
            qpos = np.broadcast_to(np.asarray(qpos, dtype=np.float64), (B, m.nq))
            qvel = np.broadcast_to(np.asarray(qvel, dtype=np.float64), (B, m.nv))
        except ValueError:
            raise SafenetError(f"{self.spec.name}: set_state needs qpos [{m.nq}] and qvel [{m.nv}] "
                               f"(or one row per copy)") from None
        if not (np.isfinite(qpos).all() and np.isfinite(qvel).all()):
            raise SafenetError(f"{self.spec.name}: set_state got NaN or inf")
        self.sim.set_state(range(B), qpos, qvel)
        self._t[:] = 0
        self._features(self._cols)
        self._ready = True
        return self._observe()[0]

    def step(self, actions: Any) -> StepResult:
        if not self._ready:
            raise SafenetError(f"{self.spec.name}: call reset() before step()")
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != self._action_shape:
            self.check_actions(a)                                     # raises the protocol's shape error
        c, lay = self._cols, self.layout
        ctrl = a.reshape(self.num_envs, -1)
        if not self._act_identity:
            ctrl = ctrl[:, self._act_src]                             # [B, nu_agents], actuator order
        ctrl_sq = c.sumsq(ctrl)
        # NaN or inf in an action makes its copy's sum of squares non-finite; only then (or when some
        # agents have padded action slots) look at every entry, and refuse before stepping.
        if self._padded or not c.finite(ctrl_sq):
            self.check_actions(a)
        before = c.snapshot(self._ref_cols)
        self.sim.step(ctrl)
        if lay.n_features:
            self._features(c)
        reward, unsafe, healthy, vx = self._outcome(c, before, ctrl_sq)
        c.put(lay.reward, reward)
        c.put(lay.cost, unsafe)
        terminated, truncated, done = c.tick(self._t, self.spec.episode_length,
                                             c.not_(healthy) if self._terminates else False)
        obs, state = self._observe()
        reward, cost = self._src32.take(self._reward_index, axis=1), self._src32.take(self._cost_index, axis=1)
        info: dict[str, Any] = {"x_velocity": c.array(vx)}
        if done:
            info["final_obs"], info["final_state"] = obs, state
            ids = np.flatnonzero(terminated | truncated)
            qpos, qvel = self._fresh(ids)
            self.sim.set_state(ids, qpos, qvel)
            self._t[ids] = 0
            self._features(c)
            obs, state = self._observe()
        info["state"] = state
        return obs, reward, cost, terminated, truncated, info

    def state(self) -> np.ndarray:
        if not self._ready:
            raise SafenetError(f"{self.spec.name}: call reset() before state()")
        return self._last_state.copy()

    def render(self, env_index: int = 0) -> np.ndarray:
        """An RGB frame ``[H, W, 3]`` (uint8) of copy ``env_index`` from the tracking camera."""
        if not self._ready:
            raise SafenetError(f"{self.spec.name}: call reset() before render()")
        if not 0 <= env_index < self.num_envs:
            raise SafenetError(f"{self.spec.name}: env_index must be in 0..{self.num_envs - 1}, got {env_index}")
        if self._renderer is None:
            try:
                with offscreen_context() as backend:
                    try:
                        self._renderer = mujoco.Renderer(self.model, self.cfg.render_height, self.cfg.render_width)
                    except Exception as exc:  # noqa: BLE001 - any GL failure means: no offscreen rendering here
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                        raise NoRenderingBackend(f"cannot render with the {backend} OpenGL backend "
                                                 f"({type(exc).__name__}: {first}); {INSTALL_HINT}") from None
            except NoRenderingBackend as exc:
                raise NoRenderingBackend(f"{self.spec.name}: {exc}") from None
        self._renderer.update_scene(self.sim.datas[env_index], camera="track")
        return self._renderer.render().copy()

    def close(self) -> None:
        self.sim.close()
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


# ------------------------------------------------------------------------------------------------
# Factories
# ------------------------------------------------------------------------------------------------

def make(cfg: Any = None, num_envs: int = 1, seed: int | None = None) -> MamujocoGame:
    """Build a game from config keys (see :class:`~safenet_mamujoco.config.MamujocoConfig`)."""
    return MamujocoGame(MamujocoConfig(**config_values(MamujocoConfig, cfg, what="Safe MAMuJoCo")),
                        num_envs=num_envs, seed=seed)


def make_task(name: str, num_envs: int = 1, seed: int | None = None, **cfg: Any) -> MamujocoGame:
    """Build a game by its task name (``"safe_ant_8x1"``, ``"safety_ant_2x4_velocity"``, ...)."""
    from .plugin import resolve_task

    family, partition = resolve_task(name)
    return make({"family": family, "partition": partition, **cfg}, num_envs=num_envs, seed=seed)


def parallel_env(task: str | None = None, render_mode: str | None = None, **cfg: Any):
    """The game as a PettingZoo ``ParallelEnv`` (costs in ``infos[agent]["cost"]``), by task name or keys."""
    if task is not None:
        from .plugin import resolve_task

        family, partition = resolve_task(task)
        cfg = {"family": family, "partition": partition, **cfg}
    return to_parallel_env(lambda num_envs: make(cfg, num_envs=num_envs), render_mode=render_mode)
