"""Throughput of the SUMO ATSC grid: the game against SUMO alone, and 2 copies against 1.

Prints (never asserts) three rates in decisions (env steps) per second, measured in one run:

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


def _decisions_per_s(cfg: AtscConfig, actions: np.ndarray, seed: int, decide) -> float:
    """Decisions per second of ``decide(sim, action)`` over ``actions`` on one fresh in-process simulation."""
    sim = GridSimulation(cfg, build(cfg))
    sim.start(seed)
    t0 = time.perf_counter()
    for a in actions:
        decide(sim, a)
    rate = len(actions) / (time.perf_counter() - t0)
    sim.close()
    return rate


def sumo_alone(cfg: AtscConfig, actions: np.ndarray, seed: int) -> float:
    """SUMO stepping the network with the same signal calls, no observation code."""
    return _decisions_per_s(cfg, actions, seed, lambda sim, a: sim.apply(a))


def game_code_in_process(cfg: AtscConfig, actions: np.ndarray, seed: int) -> float:
    """The game's per-decision work (reads, reward, cost, observation, pressure) without the worker process."""
    def decide(sim, a):
        sim.step(a)
        sim.observation()
        sim.pressure()
        sim.queue()
    return _decisions_per_s(cfg, actions, seed, decide)


def game_rate(cfg: AtscConfig, actions: np.ndarray, copies: int, seed: int) -> float:
    game = AtscGame(cfg, num_envs=copies, seed=seed)
    try:
        game.reset(seed=seed)
        t0 = time.perf_counter()
        for a in actions:
            game.step(np.repeat(a[None], copies, axis=0))
        return len(actions) * copies / (time.perf_counter() - t0)
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
    rates: dict[str, list[float]] = {"sumo alone": [], "game code, no worker": [], "game, 1 copy": [],
                                     f"game, {args.copies} copies": []}
    for _ in range(args.repeats):
        rates["sumo alone"].append(sumo_alone(cfg, actions, worker_sumo_seed(seed, 0, 1)))
        rates["game code, no worker"].append(game_code_in_process(cfg, actions, worker_sumo_seed(seed, 0, 1)))
        rates["game, 1 copy"].append(game_rate(cfg, actions, 1, seed))
        rates[f"game, {args.copies} copies"].append(game_rate(cfg, actions, args.copies, seed))
    print(f"atsc_grid_{args.rows}x{args.cols}: {args.decisions} decisions ({5 * args.decisions} simulated s) "
          f"per measurement, {args.repeats} repeats, best of each")
    best = {k: max(v) for k, v in rates.items()}
    for k, v in best.items():
        per_copy = v / (args.copies if "copies" in k else 1)
        print(f"  {k:22s} {v:8.1f} env steps/s  ({5 * per_copy:.0f} simulated s per wall s per copy)")
    print(f"  game / sumo alone: {best['game, 1 copy'] / best['sumo alone']:.2f}x   (target >= 0.9x); "
          f"game code without the worker / sumo alone: {best['game code, no worker'] / best['sumo alone']:.2f}x")
    print(f"  {args.copies} copies / 1 copy: {best[f'game, {args.copies} copies'] / best['game, 1 copy']:.2f}x")


if __name__ == "__main__":
    main()
