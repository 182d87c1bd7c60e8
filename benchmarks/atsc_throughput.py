"""Throughput of the SUMO ATSC grid: the game against SUMO alone, and 2 copies against 1.

Prints (never asserts) rates in decisions (env steps) per second, measured in one run, twice: per
second of wall time, and per second of CPU time (this process's, plus its SUMO workers' read from
``/proc``). Wall rates move with the machine's load; CPU rates much less, so on a shared machine read
the CPU ratio as the cost of the game's code and process boundary, and the wall ratio on a quiet one:

* ``sumo alone``: one libsumo simulation in this process stepping the network with exactly the
  game's signal calls (phase changes with yellow) and no reads, observation, reward or cost code;
* ``game code, no worker``: the same simulation in this process running the game's per-decision code
  (reads, reward, cost, observation, pressure), to separate that cost from the process boundary;
* ``game, 1 copy``: ``AtscGame`` with one worker process, the same SUMO seed and the same actions;
* ``game, N copies``: ``AtscGame`` with ``--copies`` workers (env steps summed over copies).

The ratio game / sumo alone is the cost of the observation code and the process boundary::

    python benchmarks/atsc_throughput.py --decisions 360 --copies 2
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from safenet_atsc.config import AtscConfig
from safenet_atsc.game import AtscGame
from safenet_atsc.network import build
from safenet_atsc.sim import GridSimulation


def worker_sumo_seed(game_seed: int, copy: int, copies: int) -> int:
    """The SUMO seed the game's worker ``copy`` uses for its first episode (as ``worker.py`` draws it)."""
    seeds = np.random.SeedSequence(game_seed).generate_state(copies)
    return int(np.random.default_rng(int(seeds[copy])).integers(0, 2**31 - 1))


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by processes ``pids``, from ``/proc/<pid>/stat``."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")  # not Linux, or the process is gone: no CPU figure
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


class Clock:
    """Wall and CPU seconds of a block: this process's CPU time plus that of ``pids``."""

    def __init__(self, pids: list[int] | None = None) -> None:
        self.pids = pids or []

    def __enter__(self) -> "Clock":
        self._w, self._c, self._p = time.perf_counter(), time.process_time(), _cpu_s(self.pids)
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._w
        self.cpu = time.process_time() - self._c + (_cpu_s(self.pids) - self._p)


def _decisions_per_s(cfg: AtscConfig, actions: np.ndarray, seed: int, decide) -> tuple[float, float]:
    """Decisions per wall second and per CPU second of ``decide(sim, action)`` over ``actions`` on one
    fresh in-process simulation."""
    sim = GridSimulation(cfg, build(cfg))
    sim.start(seed)
    with Clock() as c:
        for a in actions:
            decide(sim, a)
    sim.close()
    return len(actions) / c.wall, len(actions) / c.cpu


def sumo_alone(cfg: AtscConfig, actions: np.ndarray, seed: int) -> tuple[float, float]:
    """SUMO stepping the network with the same signal calls, no observation code."""
    return _decisions_per_s(cfg, actions, seed, lambda sim, a: sim.apply(a))


def game_code_in_process(cfg: AtscConfig, actions: np.ndarray, seed: int) -> tuple[float, float]:
    """The game's per-decision work (reads, reward, cost, observation, pressure) without the worker process."""
    def decide(sim, a):
        sim.step(a)
        sim.observation()
        sim.pressure()
        sim.queue()
    return _decisions_per_s(cfg, actions, seed, decide)


def game_rate(cfg: AtscConfig, actions: np.ndarray, copies: int, seed: int) -> tuple[float, float]:
    """Env steps (summed over copies) per wall second and per CPU second of the game and its workers."""
    game = AtscGame(cfg, num_envs=copies, seed=seed)
    try:
        game.reset(seed=seed)
        with Clock(list(game.worker_pids)) as c:
            for a in actions:
                game.step(np.repeat(a[None], copies, axis=0))
        return len(actions) * copies / c.wall, len(actions) * copies / c.cpu
    finally:
        game.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=5)
    p.add_argument("--cols", type=int, default=5)
    p.add_argument("--decisions", type=int, default=360, help="decisions timed per measurement (5 s each)")
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="alternate the measurements this many times")
    p.add_argument("--switch-every", type=int, default=4, help="decisions between random phase changes")
    args = p.parse_args()
    cfg = AtscConfig(rows=args.rows, cols=args.cols, episode_s=max(3600, 5 * args.decisions))
    n = args.rows * args.cols
    rng = np.random.default_rng(0)
    actions = np.repeat(rng.integers(0, 5, (-(-args.decisions // args.switch_every), n)), args.switch_every, axis=0)
    actions = actions[: args.decisions]
    seed = 7
    modes = ["sumo alone", "game code, no worker", "game, 1 copy", f"game, {args.copies} copies"]
    rates: dict[str, list[tuple[float, float]]] = {k: [] for k in modes}
    for _ in range(args.repeats):
        rates[modes[0]].append(sumo_alone(cfg, actions, worker_sumo_seed(seed, 0, 1)))
        rates[modes[1]].append(game_code_in_process(cfg, actions, worker_sumo_seed(seed, 0, 1)))
        rates[modes[2]].append(game_rate(cfg, actions, 1, seed))
        rates[modes[3]].append(game_rate(cfg, actions, args.copies, seed))
    print(f"atsc_grid_{args.rows}x{args.cols}: {args.decisions} decisions ({5 * args.decisions} simulated s) "
          f"per measurement, {args.repeats} repeats, best of each; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    wall = {k: max(r[0] for r in v) for k, v in rates.items()}
    cpu = {k: max(r[1] for r in v) for k, v in rates.items()}
    print(f"  {'mode':22s} {'per wall s':>11s} {'per CPU s':>10s}   (env steps; simulated s per wall s per copy)")
    for k in modes:
        per_copy = wall[k] / (args.copies if "copies" in k else 1)
        print(f"  {k:22s} {wall[k]:11.1f} {cpu[k]:10.1f}   ({5 * per_copy:.0f})")
    for name, r in (("wall", wall), ("CPU", cpu)):
        print(f"  {name:4s} game / sumo alone: {r['game, 1 copy'] / r['sumo alone']:.2f}x (target >= 0.9x); "
              f"game code without the worker / sumo alone: {r['game code, no worker'] / r['sumo alone']:.2f}x; "
              f"{args.copies} copies / 1 copy: {r[modes[3]] / r['game, 1 copy']:.2f}x")


if __name__ == "__main__":
    main()
