"""One copy of the grid, simulated by SUMO through libsumo (one simulation per process).

:class:`GridSimulation` runs inside a worker process (``worker.py``); the benchmark also uses it to
time SUMO alone. Per decision it applies the intersections' phases (with the yellow rule of
``signals.py``), advances SUMO ``control_interval_s`` one-second steps, and reads the vehicle,
halting and waiting counts of every lane once. See the package README for the observation, reward,
cost and metrics it computes from them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import AtscConfig
from .network import Layout
from .signals import N_PHASES, yellow_state

#: Space a standing vehicle takes: length 5 m plus minimum gap 2.5 m (the vType in the demand file).
VEHICLE_SPACE_M = 7.5
#: Observation: vehicles per incoming lane divided by this, clipped at OBS_CLIP.
OBS_SCALE, OBS_CLIP = 5.0, 2.0
METRIC_NAMES = ("queue", "waiting", "delay", "throughput", "teleports")


def sumo_args(layout: Layout, cfg: AtscConfig, seed: int) -> list[str]:
    return ["sumo", "-n", str(layout.net_file), "-r", str(layout.route_file), "--seed", str(int(seed)),
            "--begin", "0", "--step-length", "1", "--time-to-teleport", str(cfg.time_to_teleport),
            "--no-step-log", "true", "--no-warnings", "true", "--duration-log.disable", "true",
            "--device.tripinfo.probability", "1", "--tripinfo-output.write-unfinished", "false"]


@dataclass
class EpisodeTotals:
    """Running sums of one episode, turned into the metrics at its end."""

    decisions: int = 0
    queue: float = 0.0
    arrived: int = 0
    teleports: int = 0
    spill_back: np.ndarray = field(default_factory=lambda: np.zeros(0))


class GridSimulation:
    """One SUMO simulation of the grid of ``layout`` (call :meth:`start` first, :meth:`close` at the end)."""

    def __init__(self, cfg: AtscConfig, layout: Layout) -> None:
        import libsumo

        self.sumo = libsumo
        self.cfg, self.layout = cfg, layout
        self.n = len(layout.intersections)
        lanes = sorted({x for row in layout.in_lanes for x in row} | {x for row in layout.out_lanes for x in row})
        self.lanes = lanes
        pos = {name: i for i, name in enumerate(lanes)}
        self.in_idx = np.array([[pos[x] for x in row] for row in layout.in_lanes])      # [n, 12]
        self.out_idx = np.array([[pos[x] for x in row] for row in layout.out_lanes])    # [n, 12]
        self.in_lane_idx = np.unique(self.in_idx)                                       # lanes that end at a signal
        self.in_lane_names = [lanes[i] for i in self.in_lane_idx]
        self.states = layout.phase_states()
        self.green = np.array([[c in "Gg" for c in s] for s in self.states], dtype=np.float64)  # [P, 12]
        self._yellow: dict[tuple[int, int], str] = {}
        self.capacity = np.zeros(len(lanes))
        self.started = False
        self.trace: list[list[str]] | None = None      # per simulated second, every TL state (tests)
        self.reset_counters()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, seed: int) -> None:
        """Start (or restart) an episode with SUMO seeded by ``seed``; every intersection in phase 0."""
        args = sumo_args(self.layout, self.cfg, seed)
        if self.started:
            self.sumo.load(args[1:])
        else:
            self.sumo.start(args)
            self.started = True
            self.capacity = np.array([self.sumo.lane.getLength(x) for x in self.lanes]) / VEHICLE_SPACE_M
        for tl in self.layout.intersections:
            self.sumo.trafficlight.setRedYellowGreenState(tl, self.states[0])
        self.reset_counters()
        self.read()

    def close(self) -> None:
        if self.started:
            self.sumo.close()
            self.started = False

    def reset_counters(self) -> None:
        self.time_s = 0
        self.phase = np.zeros(self.n, dtype=np.int64)
        self.phase_age = np.zeros(self.n, dtype=np.int64)
        self.totals = EpisodeTotals(spill_back=np.zeros(self.n))
        self.count = np.zeros(len(self.lanes))
        self.halting = np.zeros(len(self.lanes))

    @property
    def done(self) -> bool:
        return self.time_s >= self.cfg.episode_s

    # -- one decision ----------------------------------------------------------------------------
    def _yellow_state(self, old: int, new: int) -> str:
        key = (old, new)
        if key not in self._yellow:
            self._yellow[key] = yellow_state(self.states[old], self.states[new])
        return self._yellow[key]

    def _advance(self, seconds: int) -> None:
        sim = self.sumo.simulation
        for _ in range(seconds):
            self.sumo.simulationStep()
            self.totals.arrived += sim.getArrivedNumber()
            self.totals.teleports += sim.getStartingTeleportNumber()
            if self.trace is not None:
                self.trace.append([self.sumo.trafficlight.getRedYellowGreenState(tl) for tl in self.layout.intersections])
        self.time_s += seconds

    def apply(self, actions: np.ndarray) -> None:
        """Set the phases of one decision and simulate ``control_interval_s`` seconds (no reads)."""
        cfg, tls = self.cfg, self.sumo.trafficlight
        ids = self.layout.intersections
        changed = np.flatnonzero(actions != self.phase)
        if len(changed) and cfg.yellow_s:
            for i in changed:
                tls.setRedYellowGreenState(ids[i], self._yellow_state(int(self.phase[i]), int(actions[i])))
            self._advance(cfg.yellow_s)
            rest = cfg.control_interval_s - cfg.yellow_s
        else:
            rest = cfg.control_interval_s
        for i in changed:
            tls.setRedYellowGreenState(ids[i], self.states[int(actions[i])])
        self._advance(rest)
        self.phase_age += 1
        self.phase_age[changed] = 1
        self.phase = np.asarray(actions, dtype=np.int64).copy()

    def read(self) -> None:
        """Vehicles on every lane and halting vehicles on every incoming lane, once per decision."""
        lane = self.sumo.lane
        names = self.lanes
        self.count = np.fromiter((lane.getLastStepVehicleNumber(x) for x in names), float, len(names))
        self.halting[self.in_lane_idx] = np.fromiter((lane.getLastStepHaltingNumber(x) for x in self.in_lane_names),
                                                     float, len(self.in_lane_names))

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One decision: returns ``(reward[n], cost[n])`` and updates the episode totals."""
        self.apply(actions)
        self.read()
        halting_in = self.halting[self.in_idx]                                   # [n, 12]
        reward = 0.0 - halting_in.sum(axis=1)
        spilled = halting_in >= self.cfg.spill_back_fraction * self.capacity[self.in_idx]
        cost = spilled.any(axis=1).astype(np.float64)
        t = self.totals
        t.decisions += 1
        t.queue += float(halting_in.mean())
        t.spill_back += cost
        return reward, cost

    # -- what the agents and controllers see -----------------------------------------------------
    def observation(self) -> np.ndarray:
        counts = np.minimum(self.count[self.in_idx] / OBS_SCALE, OBS_CLIP)          # [n, 12]
        if not self.cfg.obs_phase:
            return counts.astype(np.float32)
        onehot = np.eye(N_PHASES)[self.phase]
        return np.concatenate([counts, onehot], axis=1).astype(np.float32)

    def pressure(self) -> np.ndarray:
        """``[n, P]``: per phase, the sum over its green links of vehicles on the incoming lane minus
        vehicles on the outgoing lane (the max-pressure rule's weights)."""
        diff = self.count[self.in_idx] - self.count[self.out_idx]                # [n, 12]
        return diff @ self.green.T

    def queue(self) -> np.ndarray:
        """``[n]``: halting vehicles on each intersection's incoming lanes."""
        return self.halting[self.in_idx].sum(axis=1)

    def metrics(self) -> dict[str, float]:
        """The episode's field metrics (call at its end): ``queue`` (halting vehicles per incoming lane,
        mean over decisions), ``delay`` and ``waiting`` (SUMO's time loss and standing time, mean over
        the trips that ended), ``throughput`` (trips ended) and ``teleports`` (vehicles SUMO teleported)."""
        t = self.totals
        trips = {}
        for key, attr in (("delay", "timeLoss"), ("waiting", "waitingTime")):
            try:
                value = float(self.sumo.simulation.getParameter("", f"device.tripinfo.{attr}"))
            except Exception:  # noqa: BLE001 - SUMO refuses when no trip has finished
                value = float("nan")
            trips[key] = value if t.arrived else float("nan")
        return {"queue": t.queue / max(t.decisions, 1), **trips, "throughput": float(t.arrived),
                "teleports": float(t.teleports)}
