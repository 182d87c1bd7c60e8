"""B MuJoCo simulations of one model stepped together on a small thread pool.

``mujoco.mj_step`` releases the GIL, so copies split into ``threads`` chunks run in parallel (the
calling thread takes the first chunk). After each step a copy's ``qpos``/``qvel`` (and contact forces,
tracked body positions, tendon state) are copied into batched arrays the game reads in one go.

Each step is exactly Gymnasium's ``MujocoEnv`` step: ``mj_step(nstep=frame_skip)`` and, for robots
that observe contact forces, ``mj_rnePostConstraint`` afterwards (so ``cfrc_ext`` means what it means
in Gymnasium and MaMuJoCo). ``mujoco.batch``/``mujoco.rollout`` are faster to call but cannot run
``mj_rnePostConstraint`` between steps.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np


class Simulator:
    """``num_envs`` copies of ``model``; ``qpos``/``qvel`` may be views into the caller's arrays."""

    def __init__(self, model: mujoco.MjModel, num_envs: int, frame_skip: int, threads: int, *,
                 contact_forces: bool, track_bodies: list[int], qpos: np.ndarray, qvel: np.ndarray) -> None:
        self.model = model
        self.num_envs = B = num_envs
        self.frame_skip = int(frame_skip)
        self.datas = [mujoco.MjData(model) for _ in range(B)]
        self.qpos, self.qvel = qpos, qvel
        self.contact_forces = contact_forces
        self.cfrc = np.zeros((B, model.nbody, 6))
        self.track = np.asarray(track_bodies, dtype=np.intp)
        self.xpos = np.zeros((B, len(self.track), 3))
        self.time = np.zeros(B)
        self.ten = np.zeros((B, 2 * model.ntendon))
        threads = max(1, min(int(threads) or (os.cpu_count() or 1), B))
        self.chunks = [c for c in np.array_split(np.arange(B), threads) if len(c)]
        self.pool = ThreadPoolExecutor(len(self.chunks) - 1) if len(self.chunks) > 1 else None

    @property
    def threads(self) -> int:
        return len(self.chunks)

    def _read(self, b: int, d: mujoco.MjData) -> None:
        self.qpos[b] = d.qpos
        self.qvel[b] = d.qvel
        if self.contact_forces:
            self.cfrc[b] = d.cfrc_ext
        if len(self.track):
            self.xpos[b] = d.xpos[self.track]
        self.time[b] = d.time
        if self.model.ntendon:
            nt = self.model.ntendon
            self.ten[b, :nt] = d.ten_length
            self.ten[b, nt:] = d.ten_velocity

    def _run(self, ids: np.ndarray, ctrl: np.ndarray) -> None:
        m, n, rne = self.model, self.frame_skip, self.contact_forces
        for b in ids:
            d = self.datas[b]
            d.ctrl[:] = ctrl[b]
            mujoco.mj_step(m, d, nstep=n)
            if rne:
                mujoco.mj_rnePostConstraint(m, d)
            self._read(b, d)

    def step(self, ctrl: np.ndarray) -> None:
        """Advance every copy ``frame_skip`` physics steps under controls ``ctrl[B, nu]``."""
        if self.pool is None:
            self._run(self.chunks[0], ctrl)
            return
        futures = [self.pool.submit(self._run, c, ctrl) for c in self.chunks[1:]]
        self._run(self.chunks[0], ctrl)
        for f in futures:
            f.result()

    def set_state(self, ids: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Gymnasium's reset of copies ``ids``: ``mj_resetData``, write the state, ``mj_forward``."""
        m = self.model
        for k, b in enumerate(ids):
            d = self.datas[b]
            mujoco.mj_resetData(m, d)
            d.qpos[:] = qpos[k]
            d.qvel[:] = qvel[k]
            mujoco.mj_forward(m, d)
            self._read(b, d)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False)
            self.pool = None
