"""Figures quoted in the README: episode cost/return of simple action rules, and step throughput.

    python envs/cacc/scripts/measure.py [--episodes 256]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from safenet_cacc import make

RULES = {
    "uniform random": None,
    "always (0.5,0.5)": 3,
    "always (0,0.5)": 2,
    "always (0.5,0)": 1,
    "always (0,0)": 0,
}


def episodes(scenario: str, rule: int | None, n_episodes: int, seed: int = 0, **kw) -> dict[str, float]:
    g = make({"scenario": scenario, **kw}, num_envs=n_episodes, seed=seed)
    g.reset(seed=seed)
    rng = np.random.default_rng(seed + 1)
    B, n, T = n_episodes, g.n, g.spec.episode_length
    ep_cost, ep_ret = np.zeros((B, n)), np.zeros((B, n))
    finished = np.zeros(B, dtype=bool)
    collided = np.zeros(B, dtype=bool)
    min_h = np.full(B, np.inf)
    lengths = np.zeros(B)                 # steps each copy's episode lasted (a collision ends it early)
    for _ in range(T):
        a = rng.integers(0, 4, (B, n)) if rule is None else np.full((B, n), rule)
        _, r, c, term, trunc, info = g.step(a)
        live = ~finished
        ep_cost[live] += c[live, :, 0]
        ep_ret[live] += r[live]
        lengths[live] += 1
        h = info.get("final_headway", info["headway"])
        min_h[live] = np.minimum(min_h[live], h[live].min(axis=1))
        collided |= live & (term & ~finished)
        finished |= term | trunc
    per_vehicle = ep_cost  # [B, n]
    e = per_vehicle.mean(axis=0)  # expected episode cost of each vehicle (what the constraint bounds)
    return {"cost_mean": float(e.mean()), "cost_vehicle_min": float(e.min()), "cost_vehicle_max": float(e.max()),
            "collision_rate": float(collided.mean()), "min_headway": float(min_h.min()),
            "reward_per_step": float((ep_ret.mean(axis=1) / np.maximum(lengths, 1)).mean())}


def throughput(n: int, B: int, steps: int = 1000, repeats: int = 3) -> float:
    """Batched steps per second (best of ``repeats``), slow-down, uniform-random actions."""
    return max(_throughput(n, B, steps) for _ in range(repeats))


def _throughput(n: int, B: int, steps: int) -> float:
    g = make({"n_vehicles": n, "scenario": "slowdown"}, num_envs=B, seed=0)
    g.reset(seed=0)
    a = np.random.default_rng(0).integers(0, 4, (steps, B, n))
    t0 = time.perf_counter()
    for k in range(steps):
        g.step(a[k])
    dt = time.perf_counter() - t0
    return steps / dt


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--episodes", type=int, default=256)
    args = p.parse_args()
    for scenario in ("catchup", "slowdown"):
        for name, rule in RULES.items():
            m = episodes(scenario, rule, args.episodes)
            print(f"{scenario:9s} {name:18s} E[episode cost] per vehicle: mean {m['cost_mean']:6.2f} "
                  f"min {m['cost_vehicle_min']:6.2f} max {m['cost_vehicle_max']:6.2f}  "
                  f"collisions {m['collision_rate']:.3f}  min h {m['min_headway']:6.2f}  "
                  f"reward/step/vehicle {m['reward_per_step']:9.1f}")
    for n in (8, 100):
        for B in (1, 64):
            sps = throughput(n, B)
            print(f"throughput n={n:3d} B={B:2d}: {sps:8.0f} batched steps/s = {sps * B:9.0f} copy-steps/s "
                  f"= {sps * B * n:10.0f} vehicle-steps/s")
