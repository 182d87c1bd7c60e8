"""``atsc_grid_<R>x<C>``: traffic-signal control on a grid of intersections, simulated by SUMO.

:class:`AtscGame` is the batched game: ``num_envs`` copies, each a SUMO simulation in its own worker
process (``worker.py``), stepped in parallel. ``info`` of every reset and step carries, per copy:
``phase`` and ``phase_age`` (``[B, n]``: the phase shown and for how many decisions it has been
shown, 0 when an episode starts), ``pressure`` (``[B, n, 5]``, see ``GridSimulation.pressure``), ``queue`` (``[B, n]``:
halting vehicles on each intersection's incoming lanes) and ``decision`` (``[B]``: decisions since
the episode started). On a step where some copy's episode ended the same keys with a ``final_``
prefix and ``final_obs`` hold its last values, and ``episode_metrics`` holds the field metrics of the
episodes that ended (``[B]`` each, NaN for the copies still running; see ``sim.METRIC_NAMES``).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import weakref
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from safenet.errors import SafenetError
from safenet.game import BatchedGame, GameSpec, StepResult, to_parallel_env
from safenet.graph import Graph

from .config import AtscConfig, config_from
from .network import Layout, build
from .signals import N_PHASES

TAGS = frozenset({"discrete", "constrained", "traffic_signals"})
WORKER_TIMEOUT_S = 10.0


def _shutdown(procs: list[subprocess.Popen], conns: list[Connection]) -> None:
    """Close every worker: ask politely, then terminate, then kill. Safe to call twice."""
    for c in conns:
        try:
            c.send(("close",))
        except OSError:
            pass
    for p in procs:
        try:
            p.wait(timeout=WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                p.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    for c in conns:
        c.close()
    procs.clear()
    conns.clear()


class AtscGame(BatchedGame):
    """``num_envs`` copies of the signalised grid (see the module docstring and the README)."""

    def __init__(self, cfg: AtscConfig | None = None, num_envs: int = 1, seed: int | None = None) -> None:
        cfg = config_from(cfg)
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise SafenetError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.cfg = cfg
        self.num_envs = int(num_envs)
        self.layout: Layout = build(cfg)
        n = len(self.layout.intersections)
        obs_dim = 12 + (N_PHASES if cfg.obs_phase else 0)
        self.spec = GameSpec(
            name=f"atsc_grid_{cfg.rows}x{cfg.cols}", agents=self.layout.intersections,
            graph=Graph.from_edges(n, self.layout.edges), obs_dims=(obs_dim,) * n, action_kind="discrete",
            action_dims=(N_PHASES,) * n, episode_length=cfg.decisions, n_costs=(1,) * n,
            cost_limits=((float(cfg.cost_limit),),) * n, cost_names=("spill_back",), tags=TAGS)
        self._seed = seed
        self._procs: list[subprocess.Popen] = []
        self._conns: list[Connection] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._conns)
        self._last_info: dict[str, np.ndarray] = {}
        self._started = False
        try:
            self._spawn()
        except BaseException:
            self.close()
            raise

    # -- workers ---------------------------------------------------------------------------------
    def _spawn(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)   # import this package as the parent does
        cfg_dict = {k: getattr(self.cfg, k) for k in self.cfg.__dataclass_fields__}
        for _ in range(self.num_envs):
            mine, theirs = socket.socketpair()
            proc = subprocess.Popen([sys.executable, "-m", "safenet_atsc.worker", str(theirs.fileno()), str(os.getpid())],
                                    pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
            theirs.close()
            self._procs.append(proc)
            self._conns.append(Connection(mine.detach()))
        self._broadcast([("init", cfg_dict, str(self.layout.folder))] * self.num_envs)

    @property
    def worker_pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def _broadcast(self, messages: list[tuple]) -> list[Any]:
        """Send one message to each worker, then collect every answer (the workers run in parallel)."""
        if not self._conns:
            raise SafenetError(f"{self.spec.name if hasattr(self, 'spec') else 'atsc'}: the game is closed")
        for c, m in zip(self._conns, messages):
            try:
                c.send(m)
            except OSError as exc:
                raise SafenetError(f"ATSC worker is gone ({exc}); the game must be rebuilt") from None
        out, errors = [], []
        for b, (c, p) in enumerate(zip(self._conns, self._procs)):
            try:
                status, payload = c.recv()
            except (EOFError, OSError):
                errors.append(f"copy {b}: worker process {p.pid} exited (code {p.poll()})")
                continue
            if status == "error":
                errors.append(f"copy {b}: {payload.strip().splitlines()[-1]}\n{payload}")
            out.append(payload)
        if errors:
            raise SafenetError("ATSC simulation failed: " + "; ".join(errors))
        return out

    def close(self) -> None:
        self._finalizer()

    # -- protocol --------------------------------------------------------------------------------
    def _stack_info(self, infos: list[dict]) -> dict[str, Any]:
        keys = ("phase", "phase_age", "pressure", "queue", "decision")
        return {k: np.stack([np.asarray(i[k]) for i in infos]) for k in keys}

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is None and not self._started:
            seed = self._seed
        seeds: list[int | None] = [None] * self.num_envs
        if seed is not None:
            seeds = [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(self.num_envs)]
        out = self._broadcast([("reset", s) for s in seeds])
        self._started = True
        obs = np.stack([o for o, _ in out])
        info = self._stack_info([i for _, i in out])
        self._last_info = info
        return obs, info

    def step(self, actions: Any) -> StepResult:
        if not self._started:
            raise SafenetError(f"{self.spec.name}: call reset() before step()")
        act = self.check_actions(actions)
        out = self._broadcast([("step", act[b]) for b in range(self.num_envs)])
        obs = np.stack([o[0] for o in out])
        reward = np.stack([o[1] for o in out]).astype(np.float64)
        cost = np.stack([o[2] for o in out]).astype(np.float64)[:, :, None]
        done = np.array([o[3] for o in out], dtype=bool)
        infos = [o[4] for o in out]
        info = self._stack_info(infos)
        if done.any():
            info["final_obs"] = np.stack([i["final_obs"] if d else ob for i, d, ob in zip(infos, done, obs)])
            for k in ("phase", "phase_age", "pressure", "queue", "decision"):
                info[f"final_{k}"] = np.stack([i[f"final_{k}"] if d else info[k][b]
                                               for b, (i, d) in enumerate(zip(infos, done))])
            names = next(i["episode_metrics"] for i, d in zip(infos, done) if d).keys()
            info["episode_metrics"] = {m: np.array([i["episode_metrics"][m] if d else np.nan for i, d in zip(infos, done)])
                                       for m in names}
        if any("trace" in i for i in infos):
            info["trace"] = [i.get("trace") for i in infos]
        self._last_info = info
        terminated = np.zeros(self.num_envs, dtype=bool)
        return obs, reward, cost, terminated, done, info

    # -- tests and tools -------------------------------------------------------------------------
    def set_trace(self, on: bool) -> None:
        """Record every traffic light's state each simulated second; steps then carry ``info["trace"]``
        (per copy, a list of per-second lists of state strings)."""
        self._broadcast([("trace", bool(on))] * self.num_envs)

    def query(self, what: str) -> list[Any]:
        """Read SUMO directly in every copy: ``"tl_states"``, ``"tl_programs"``, ``"links"`` (per
        intersection, ``(incoming lane, outgoing lane)`` of each link index), ``"halting"`` or
        ``"lane_lengths"`` (per lane)."""
        return self._broadcast([("query", what)] * self.num_envs)

    def render(self, env_index: int = 0) -> np.ndarray:
        """A heat-map of copy ``env_index``: one cell per intersection, coloured by its queue (white 0,
        red at 60 halting vehicles or more), with a bar along the axis its phase serves."""
        if not self._last_info:
            raise SafenetError(f"{self.spec.name}: call reset() before render()")
        R, C, cell = self.cfg.rows, self.cfg.cols, 48
        q = np.clip(self._last_info["queue"][env_index] / 60.0, 0.0, 1.0).reshape(R, C)
        phase = self._last_info["phase"][env_index].reshape(R, C)
        img = np.full((R * cell, C * cell, 3), 40, dtype=np.uint8)
        for r in range(R):
            for c in range(C):
                y, x = r * cell, c * cell
                colour = np.array([255, 255 * (1 - q[r, c]), 255 * (1 - q[r, c])], dtype=np.uint8)
                img[y + 2:y + cell - 2, x + 2:x + cell - 2] = colour
                mid = cell // 2
                p = int(phase[r, c])
                if p == 0:                                     # NS-through: vertical bar
                    img[y + 6:y + cell - 6, x + mid - 2:x + mid + 2] = (0, 140, 0)
                elif p in (1, 2):                              # EW phases: horizontal bar
                    img[y + mid - 2:y + mid + 2, x + 6:x + cell - 6] = (0, 140, 0) if p == 2 else (0, 90, 200)
                else:                                          # E-all / W-all: half bar on that side
                    x0, x1 = (x + mid, x + cell - 6) if p == 3 else (x + 6, x + mid)
                    img[y + mid - 2:y + mid + 2, x0:x1] = (0, 90, 200)
        return img


def make(cfg: Any = None, num_envs: int = 1, seed: int | None = None) -> AtscGame:
    """Build the game from config keys (see :class:`~safenet_atsc.config.AtscConfig`)."""
    return AtscGame(config_from(cfg), num_envs=num_envs, seed=seed)


def parallel_env(render_mode: str | None = None, **cfg: Any):
    """The game as a PettingZoo ``ParallelEnv`` (costs in ``infos[agent]["cost"]``)."""
    return to_parallel_env(lambda num_envs: make(cfg, num_envs=num_envs), render_mode=render_mode)
