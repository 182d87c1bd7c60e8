"""The Safe MAMuJoCo game: B copies of a multi-agent MuJoCo robot (``safenet.BatchedGame``).

One step, for all copies at once (no Python loop over agents):

1. validate the actions ``[B, n, a]`` (shape, NaN/inf refused before the simulation is touched) and
   scatter them to the actuators with one precomputed index;
2. step the copies (``sim.Simulator``: thread pool, Gymnasium's ``mj_step`` semantics);
3. forward velocity from the displacement of the robot's reference point over ``dt``; reward, health,
   costs and task features as numpy expressions over ``[B]``;
4. observations and state gathered from one source row per copy with precomputed index arrays
   (``layout``); copies whose episode ended are reset (``info["final_obs"]``, ``info["final_state"]``).

Rewards (Gymnasium v5 / MaMuJoCo, shared by all agents): ant robots
``vx + 1[healthy] - 0.5 |a|^2 - 5e-4 |clip(cfrc_ext, -1, 1)|^2``; HalfCheetah ``vx - 0.1 |a|^2``;
Coupled HalfCheetah the mean of both cheetahs' ``vx - 0.1 |a_k|^2``; Hopper / Walker2d
``vx + 1[healthy] - 1e-3 |a|^2``; Swimmer ``vx - 1e-4 |a|^2``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from safenet.config import config_values
from safenet.errors import SafenetError
from safenet.game import BatchedGame, GameSpec, StepResult, to_parallel_env

from . import models
from .config import FAMILIES, MamujocoConfig
from .layout import (SourceLayout, agent_graph, hop_rings, joint_adjacency, observation_index, state_index)
from .robots import make_robot
from .sim import Simulator, mujoco

CTRL_COST = {"ant": 0.5, "cheetah": 0.1, "coupled": 0.1, "hopper": 1e-3, "walker": 1e-3, "swimmer": 1e-4}
CONTACT_COST = 5e-4            # ant robots, on clip(cfrc_ext, -1, 1)
HEALTHY_REWARD = 1.0           # ant, hopper, walker
CORRIDOR_MARGIN = 1.8          # cost within this distance of a wall (spec)
BOMB_RADIUS = 5.0              # cost when a torso is within this distance of the bomb in x


def bomb_control(t: np.ndarray) -> np.ndarray:
    """Open-loop push on the bomb's slide joint at simulation time ``t`` (seconds)."""
    return 0.02 * np.sin(np.asarray(t) / 3.0) ** 2 - 0.004


class MamujocoGame(BatchedGame):
    """``num_envs`` copies of one Safe MAMuJoCo task (see the package README for the task table).

    ``hops`` (tests and advanced use) replaces each agent's observed joint rings, e.g. to reproduce
    another library's observation layout; by default they come from the joint graph and ``agent_obsk``.
    """

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
        # -- agents, graph, observation layout --------------------------------------------------
        adj = joint_adjacency(robot)
        n = len(parts)
        self.rings = hops if hops is not None else [hop_rings(p, adj, cfg.agent_obsk) for p in parts]
        n_feat = {"corridor": 2, "bomb": 6}.get(fam.scenario, 0)
        uses_cfrc = "cfrc_ext" in {c for cats in robot.local_categories for c in cats}
        self.layout = lay = SourceLayout(m.nq, m.nv, m.nbody if uses_cfrc else 0, n_feat)
        feats = list(range(lay.features, lay.features + n_feat))
        self.obs_index, obs_dims = observation_index(m, robot, self.rings, lay, feats)
        self.state_idx = state_index(m, robot, lay, feats)
        self._adr = lambda name: int(m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)])
        self._dof = lambda name: int(m.jnt_dofadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)])
        if fam.scenario == "bomb":   # source columns the bomb features read every step
            self._bomb_cols = (self._adr("bomb_slide"), lay.qvel + self._dof("bomb_slide"), self._adr("rootx0"),
                               self._adr("rootx1"))
        # actions: agent i's slot k drives the actuator of its k-th joint
        act_of_joint = {mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, int(m.actuator_trnid[a, 0])): a
                        for a in range(m.nu)}
        a_max = max(len(p) for p in parts)
        cols, src = [], []
        for i, part in enumerate(parts):
            for k, joint in enumerate(part):
                cols.append(act_of_joint[joint])
                src.append(i * a_max + k)
        order = np.argsort(cols)
        self._act_cols = np.asarray(cols, dtype=np.intp)[order]
        self._act_src = np.asarray(src, dtype=np.intp)[order]
        self._ctrl_direct = bool(len(cols) == m.nu and np.array_equal(self._act_cols, np.arange(m.nu)))
        self._bomb_act = act_of_joint.get("bomb_slide")
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
        # -- batched state ----------------------------------------------------------------------
        self.src = np.zeros((B, lay.size))
        track = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, robot.main_body)] if robot.kind == "ant" else []
        self.sim = Simulator(m, B, self.frame_skip, cfg.threads, contact_forces=uses_cfrc, track_bodies=track,
                             qpos=self.src[:, : m.nq], qvel=self.src[:, lay.qvel: lay.qvel + m.nv])
        self._rng = np.random.default_rng(seed)
        self._t = np.zeros(B, dtype=np.int64)
        self._ready = False
        self._renderer = None
        self._x_idx = self._forward_index()

    # -- pieces ------------------------------------------------------------------------------------
    def _forward_index(self) -> list[int]:
        """qpos addresses whose displacement is the forward motion (non-ant robots)."""
        kind = self.robot.kind
        if kind == "coupled":
            return [self._adr("rootx0"), self._adr("rootx1")]
        if kind == "swimmer":
            return [self._adr("slider1"), self._adr("slider2")]
        if kind in ("cheetah", "hopper", "walker"):
            return [self._adr("rootx")]
        return []

    def _position(self) -> np.ndarray:
        """The reference point(s) whose displacement over ``dt`` is the velocity: ``[B, k]``."""
        if self.robot.kind == "ant":
            return self.sim.xpos[:, 0, :2].copy()
        return self.src[:, self._x_idx].copy()

    def _healthy(self) -> np.ndarray:
        r, q = self.robot, self.src
        nq, nv = self.model.nq, self.model.nv
        if r.kind == "ant":
            z = q[:, 2]
            ok = np.isfinite(q[:, : nq + nv]).all(axis=1) & (z >= r.healthy_z[0]) & (z <= r.healthy_z[1])
            if self.family.upside_down_unhealthy:     # torso z axis: 1 - 2 (q1^2 + q2^2) from its quaternion
                ok &= 1.0 - 2.0 * (q[:, 4] ** 2 + q[:, 5] ** 2) >= -0.7
            return ok
        if r.kind in ("hopper", "walker"):
            z, angle = q[:, 1], q[:, 2]
            ok = (z > r.healthy_z[0]) & (z < r.healthy_z[1]) & (angle > r.healthy_angle[0]) & (angle < r.healthy_angle[1])
            if r.kind == "hopper":
                rest = np.concatenate([q[:, 2:nq], q[:, nq: nq + nv]], axis=1)
                ok &= ((rest > -100.0) & (rest < 100.0)).all(axis=1)
            return ok
        return np.ones(self.num_envs, dtype=bool)

    def _features(self) -> None:
        """Write the task features into the source rows (corridor position, bomb state)."""
        fam, q, f = self.family, self.src, self.layout.features
        if fam.scenario == "corridor":
            x, y = q[:, 0], q[:, 1]
            q[:, f] = x / 5.0
            q[:, f + 1] = y - models.corridor_centre(x)
        elif fam.scenario == "bomb":
            slide, slide_v, x0, x1 = self._bomb_cols
            xb = models.BOMB_START + q[:, slide]
            q[:, f] = q[:, slide_v]
            q[:, f + 1] = bomb_control(self.sim.time)
            q[:, f + 2: f + 4] = np.clip((xb[:, None] - q[:, [x0, x1]]) * 0.1, -5.0, 5.0)
            q[:, f + 4: f + 6] = self.sim.ten[:, :2]          # tendon length and velocity

    def _bomb_x(self) -> np.ndarray:
        return models.BOMB_START + self.src[:, self._bomb_cols[0]]

    def _finish_source(self) -> None:
        lay = self.layout
        if lay.n_cfrc_bodies:
            np.clip(self.sim.cfrc.reshape(self.num_envs, -1), -1.0, 1.0, out=self.src[:, lay.cfrc: lay.features])
        self._features()

    def _obs(self) -> np.ndarray:
        return self.src[:, self.obs_index].astype(np.float32)

    def _state(self) -> np.ndarray:
        return self.src[:, self.state_idx].astype(np.float32)

    def _fresh(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Gymnasium's initial-state noise around the model's rest pose."""
        m, s = self.model, (self.cfg.reset_noise_scale if self.cfg.reset_noise_scale is not None
                            else self.robot.reset_noise)
        qpos = m.qpos0[None, :] + self._rng.uniform(-s, s, size=(k, m.nq))
        if self.robot.qvel_noise == "normal":
            qvel = s * self._rng.standard_normal((k, m.nv))
        else:
            qvel = self._rng.uniform(-s, s, size=(k, m.nv))
        return qpos, qvel

    # -- protocol ----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        qpos, qvel = self._fresh(self.num_envs)
        return self.set_state(qpos, qvel), {"state": self._state()}

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
        self.sim.set_state(np.arange(B), qpos, qvel)
        self._t[:] = 0
        self._finish_source()
        self._ready = True
        return self._obs()

    def step(self, actions: Any) -> StepResult:
        if not self._ready:
            raise SafenetError(f"{self.spec.name}: call reset() before step()")
        a = self.check_actions(actions)
        B, fam, kind = self.num_envs, self.family, self.robot.kind
        flat = a.reshape(B, -1)[:, self._act_src]                     # [B, nu_agents], actuator order
        if self._ctrl_direct:
            ctrl = flat
        else:
            ctrl = np.zeros((B, self.model.nu))
            ctrl[:, self._act_cols] = flat
            if self._bomb_act is not None:
                ctrl[:, self._bomb_act] = bomb_control(self.sim.time)
        before = self._position()
        self.sim.step(ctrl)
        self._finish_source()
        vel = (self._position() - before) / self.dt                   # [B, k]
        # -- reward ----------------------------------------------------------------------------
        sq = flat * flat
        healthy = self._healthy()
        if kind == "coupled":
            half = self.model.nu // 2 if self._bomb_act is None else (self.model.nu - 1) // 2
            c = self._act_cols < half
            forward = vel.mean(axis=1)
            ctrl_cost = CTRL_COST[kind] * 0.5 * (sq[:, c].sum(axis=1) + sq[:, ~c].sum(axis=1))
        else:
            forward = vel[:, 0]
            ctrl_cost = CTRL_COST[kind] * sq.sum(axis=1)
        r = forward - ctrl_cost
        if kind in ("ant", "hopper", "walker"):
            r = r + HEALTHY_REWARD * healthy
        if kind == "ant":
            lay = self.layout
            r = r - CONTACT_COST * np.square(self.src[:, lay.cfrc: lay.features]).sum(axis=1)
        reward = np.repeat(r[:, None], self.spec.n, axis=1).astype(np.float32)
        # -- cost ------------------------------------------------------------------------------
        if fam.scenario == "corridor":
            off = self.src[:, self.layout.features + 1]
            unsafe = (np.abs(off) > fam.wall_offset - CORRIDOR_MARGIN) | ~healthy
        elif fam.scenario == "bomb":
            xb = self._bomb_x()
            unsafe = ((np.abs(xb - self.src[:, self._x_idx[0]]) < BOMB_RADIUS)
                      | (np.abs(xb - self.src[:, self._x_idx[1]]) < BOMB_RADIUS))
        elif fam.scenario == "velocity":
            speed = np.abs(vel[:, 0]) if fam.x_velocity_only else np.sqrt((vel ** 2).sum(axis=1))
            unsafe = speed > self.velocity_threshold
        else:
            unsafe = None
        if unsafe is None:
            cost = np.zeros((B, self.spec.n, 0), dtype=np.float32)
        else:
            cost = np.repeat(unsafe.astype(np.float32)[:, None, None], self.spec.n, axis=1)
        # -- episode ends ----------------------------------------------------------------------
        self._t += 1
        terminated = ~healthy if (self.cfg.terminate_when_unhealthy and kind in ("ant", "hopper", "walker")) \
            else np.zeros(B, dtype=bool)
        truncated = (self._t >= self.spec.episode_length) & ~terminated
        obs = self._obs()
        info: dict[str, Any] = {"x_velocity": vel[:, 0].copy()}
        done = terminated | truncated
        if done.any():
            info["final_obs"] = obs.copy()
            info["final_state"] = self._state()
            ids = np.flatnonzero(done)
            qpos, qvel = self._fresh(len(ids))
            self.sim.set_state(ids, qpos, qvel)
            self._t[ids] = 0
            self._finish_source()
            obs = self._obs()
        info["state"] = self._state()
        return obs, reward, cost, terminated, truncated, info

    def state(self) -> np.ndarray:
        if not self._ready:
            raise SafenetError(f"{self.spec.name}: call reset() before state()")
        return self._state()

    def render(self, env_index: int = 0) -> np.ndarray:
        """An RGB frame ``[H, W, 3]`` (uint8) of copy ``env_index`` from the tracking camera."""
        if not self._ready:
            raise SafenetError(f"{self.spec.name}: call reset() before render()")
        if not 0 <= env_index < self.num_envs:
            raise SafenetError(f"{self.spec.name}: env_index must be in 0..{self.num_envs - 1}, got {env_index}")
        if self._renderer is None:
            try:
                self._renderer = mujoco.Renderer(self.model, self.cfg.render_height, self.cfg.render_width)
            except Exception as exc:  # noqa: BLE001 - any GL failure means: no offscreen rendering here
                raise SafenetError(f"{self.spec.name}: cannot render: no usable OpenGL backend ({type(exc).__name__}: "
                                   f"{exc}); set MUJOCO_GL=egl or MUJOCO_GL=osmesa before starting Python") from exc
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
