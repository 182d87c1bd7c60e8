"""B MuJoCo simulations of one model, stepped together and written straight into the game's source rows.

Each step of a copy is exactly Gymnasium's ``MujocoEnv`` step: ``mj_step(nstep=frame_skip)`` and, for
robots that observe contact forces, ``mj_rnePostConstraint`` afterwards (so ``cfrc_ext`` means what it
means in Gymnasium and MaMuJoCo). Right after its step, a copy's state goes into its row of the
caller's source array (:class:`~safenet_mamujoco.layout.SourceLayout`) through views of both made
once: ``qpos`` and ``qvel`` with one ``mj_getState`` call, the clipped contact forces with one
``np.clip(..., out=...)``, the tracked body's x, y, the time and the tendon state where the task uses them.

Batches are stepped by ``threads`` threads (0: as many as the run's CPU budget allows,
:func:`safenet.cpus.cpu_budget`, at most one per copy; the calling one and a pool) taking copies one at a time
from a shared counter; ``mj_step`` releases the GIL, so the copies' physics runs in parallel, and a
thread the OS schedules less often simply steps fewer copies. Every copy has its own ``MjData``, so
results do not depend on which thread stepped it. ``mujoco.rollout`` was measured as the alternative and is slower
here (each call restores the full state of every copy and records every physics substep); it also
cannot run ``mj_rnePostConstraint`` after a step or carry the solver's warm start from one call to the
next, so its results would differ from stepping persistent ``MjData``.
"""
from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import numpy as np

from safenet.cpus import cpu_budget
from safenet.errors import SafenetError

from .gl import import_mujoco
from .layout import SourceLayout

mujoco = import_mujoco()

_QPOS_QVEL = int(mujoco.mjtState.mjSTATE_QPOS | mujoco.mjtState.mjSTATE_QVEL)


class _Copy:
    """One simulation and the views that move its state into its source row."""

    __slots__ = ("data", "ctrl", "ctrl_all", "row", "state", "cfrc_in", "cfrc_out", "track_in", "track_out",
                 "ten_length", "ten_velocity")

    def __init__(self, model: mujoco.MjModel, row: np.ndarray, lay: SourceLayout, n_controls: int,
                 track_body: int | None) -> None:
        d = self.data = mujoco.MjData(model)
        self.ctrl_all = d.ctrl
        self.ctrl = d.ctrl[:n_controls]
        self.row = row
        self.state = row[: lay.nq + lay.nv]                     # mj_getState writes qpos then qvel here
        nb = lay.n_cfrc_bodies
        self.cfrc_in = d.cfrc_ext if nb else None
        self.cfrc_out = row[lay.cfrc: lay.cfrc + 6 * nb].reshape(nb, 6) if nb else None
        self.track_in = d.xpos[track_body, : lay.n_track] if lay.n_track else None
        self.track_out = row[lay.track: lay.track + lay.n_track] if lay.n_track else None
        self.ten_length, self.ten_velocity = d.ten_length, d.ten_velocity


class Simulator:
    """``source.shape[0]`` copies of ``model``; copy ``b`` writes its state into ``source[b]``.

    ``n_controls``: the agents drive actuators ``0 .. n_controls - 1`` (``step`` takes their controls);
    ``clock_control``: ``(actuator, u)`` drives one more actuator open-loop with ``u(time)``.
    """

    def __init__(self, model: mujoco.MjModel, frame_skip: int, threads: int, source: np.ndarray,
                 layout: SourceLayout, *, n_controls: int, track_body: int | None = None,
                 clock_control: tuple[int, Callable[[float], float]] | None = None) -> None:
        if source.dtype != np.float64 or not source.flags.c_contiguous or source.shape[1] != layout.size:
            raise SafenetError(f"Simulator needs a C-contiguous float64 source array [B, {layout.size}]")
        self.model = model
        self.num_envs = B = source.shape[0]
        self.frame_skip = int(frame_skip)
        self.layout = layout
        self.n_controls = n_controls
        self.copies = [_Copy(model, source[b], layout, n_controls, track_body) for b in range(B)]
        self.datas = [c.data for c in self.copies]
        self.rne = layout.n_cfrc_bodies > 0
        self._extras = bool(layout.n_cfrc_bodies or layout.n_track or layout.time or layout.tendon)
        self.clock_control = clock_control
        self.threads = max(1, min(int(threads) or cpu_budget(), B))
        self.pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None

    def _read(self, c: _Copy) -> None:
        mujoco.mj_getState(self.model, c.data, c.state, _QPOS_QVEL)
        if self._extras:                     # only robots and tasks that observe more than qpos, qvel
            lay = self.layout
            if c.cfrc_out is not None:
                np.clip(c.cfrc_in, -1.0, 1.0, out=c.cfrc_out)
            if c.track_out is not None:
                c.track_out[:] = c.track_in
            if lay.time:
                c.row[lay.clock] = c.data.time
            if lay.tendon:
                c.row[lay.tendon_at] = c.ten_length[0]
                c.row[lay.tendon_at + 1] = c.ten_velocity[0]

    def _advance(self, b: int, ctrl: np.ndarray) -> None:
        c = self.copies[b]
        c.ctrl[:] = ctrl[b]
        if self.clock_control is not None:
            act, u = self.clock_control
            c.ctrl_all[act] = u(c.data.time)
        mujoco.mj_step(self.model, c.data, nstep=self.frame_skip)
        if self.rne:
            mujoco.mj_rnePostConstraint(self.model, c.data)
        self._read(c)

    def _work(self, queue: Iterator[int], ctrl: np.ndarray) -> None:
        for b in queue:                      # copies are handed out one by one: a slow thread takes fewer
            if b >= self.num_envs:
                return
            self._advance(b, ctrl)

    def step(self, ctrl: np.ndarray) -> None:
        """Advance every copy ``frame_skip`` physics steps under the agents' controls ``ctrl[B, n_controls]``."""
        if self.pool is None:
            for b in range(self.num_envs):
                self._advance(b, ctrl)
            return
        queue = itertools.count()            # next() on it is atomic under the GIL
        futures = [self.pool.submit(self._work, queue, ctrl) for _ in range(self.threads - 1)]
        self._work(queue, ctrl)
        for f in futures:
            f.result()

    def set_state(self, ids, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Gymnasium's reset of copies ``ids``: ``mj_resetData``, write the state, ``mj_forward``."""
        m = self.model
        for k, b in enumerate(ids):
            c = self.copies[int(b)]
            mujoco.mj_resetData(m, c.data)
            c.data.qpos[:] = qpos[k]
            c.data.qvel[:] = qvel[k]
            mujoco.mj_forward(m, c.data)
            self._read(c)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False)
            self.pool = None
