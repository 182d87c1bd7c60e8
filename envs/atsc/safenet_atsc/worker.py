"""A worker process holding one SUMO simulation: ``python -m safenet_atsc.worker FD PARENT_PID``.

libsumo runs one simulation per process, so every copy of the batched game lives in its own worker.
The parent talks to it over a socket pair (file descriptor ``FD``, pickled messages):

* ``("init", cfg_dict, layout_folder)`` → ``("ok", None)``
* ``("reset", seed | None)``  → ``("ok", (obs, info))``; a seed re-seeds the worker's episode seeds
* ``("step", actions[n])``    → ``("ok", (obs, reward, cost, done, info))``; at the end of an episode
  ``info`` carries ``final_*`` values and ``episode_metrics``, and the next episode has already started
* ``("trace", on)``           → record every traffic light's state each simulated second (tests)
* ``("query", what)``         → ``"tl_states"``, ``"tl_programs"``, ``"links"``, ``"halting"`` or
  ``"lane_lengths"`` read from SUMO (tests)
* ``("close",)``              → closes SUMO and exits

Any failure is answered with ``("error", traceback)``. The worker exits when the parent closes the
socket or dies (Linux: ``PR_SET_PDEATHSIG``; elsewhere the next read fails), ignores Ctrl-C (the
parent decides when to stop) and never opens a port.
"""
from __future__ import annotations

import os
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np


def _die_with_parent(parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)                   # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent_pid:                          # the parent died before prctl took effect
        sys.exit(0)


class Copy:
    """One copy of the game: the simulation plus its episode seeds."""

    def __init__(self, cfg_dict: dict, folder: str) -> None:
        from .config import AtscConfig
        from .network import load_layout
        from .sim import GridSimulation

        self.sim = GridSimulation(AtscConfig(**cfg_dict), load_layout(Path(folder)))
        self.rng = np.random.default_rng()

    def _new_episode(self) -> None:
        self.sim.start(int(self.rng.integers(0, 2**31 - 1)))

    def info(self) -> dict[str, Any]:
        s = self.sim
        return {"phase": s.phase.copy(), "phase_age": s.phase_age.copy(), "pressure": s.pressure(),
                "queue": s.queue(), "decision": s.time_s // s.cfg.control_interval_s}

    def reset(self, seed: int | None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._new_episode()
        return self.sim.observation(), self.info()

    def step(self, actions: np.ndarray) -> tuple:
        s = self.sim
        reward, cost = s.step(np.asarray(actions, dtype=np.int64))
        done = s.done
        info = self.info()
        obs = s.observation()
        if done:
            info = {"final_obs": obs, **{f"final_{k}": v for k, v in info.items()},
                    "episode_metrics": {**s.metrics(), "spill_back": float(s.totals.spill_back.mean())}}
            if s.trace is not None:
                info["trace"] = s.trace
                s.trace = []
            self._new_episode()
            info.update(self.info())
            obs = s.observation()
        elif s.trace is not None:
            info["trace"] = s.trace
            s.trace = []
        return obs, reward, cost, done, info

    def query(self, what: str) -> Any:
        tls = self.sim.sumo.trafficlight
        ids = self.sim.layout.intersections
        if what == "tl_states":
            return [tls.getRedYellowGreenState(x) for x in ids]
        if what == "tl_programs":
            return [tls.getProgram(x) for x in ids]
        if what == "halting":
            return {x: self.sim.sumo.lane.getLastStepHaltingNumber(x) for x in self.sim.lanes}
        if what == "lane_lengths":
            return {x: self.sim.sumo.lane.getLength(x) for x in self.sim.lanes}
        if what == "links":
            return [[(link[0][0], link[0][1]) for link in tls.getControlledLinks(x)] for x in ids]
        raise ValueError(f"unknown query {what!r}")


def serve(conn: Connection) -> None:
    copy: Copy | None = None
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break                                           # the parent went away
        cmd = msg[0]
        try:
            if cmd == "close":
                break
            if cmd == "init":
                copy = Copy(msg[1], msg[2])
                out: Any = None
            elif copy is None:
                raise RuntimeError("worker used before init")
            elif cmd == "reset":
                out = copy.reset(msg[1])
            elif cmd == "step":
                out = copy.step(msg[1])
            elif cmd == "trace":
                copy.sim.trace = [] if msg[1] else None
                out = None
            elif cmd == "query":
                out = copy.query(msg[1])
            else:
                raise ValueError(f"unknown command {cmd!r}")
            conn.send(("ok", out))
        except Exception:  # noqa: BLE001 - report to the parent, which raises it
            try:
                conn.send(("error", traceback.format_exc(limit=8)))
            except OSError:
                break
    if copy is not None:
        copy.sim.close()
    try:
        conn.send(("ok", None))
    except OSError:
        pass


def main(argv: list[str]) -> None:
    fd, parent = int(argv[0]), int(argv[1])
    _die_with_parent(parent)
    serve(Connection(fd))


if __name__ == "__main__":
    main(sys.argv[1:])
