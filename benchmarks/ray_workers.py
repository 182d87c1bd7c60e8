"""Env-steps/s of the training loop with ``trainer.workers`` = 0, 1, 2 (Ray rollout workers), measured
in one process one after the other, and the per-iteration price of the workers (weights out, batches
back, merging). Also checks that workers=0 and workers=N logged the same metrics, bit for bit.

    python benchmarks/ray_workers.py --env safe_ant_8x1 --algo dec-mappo-l --iterations 6

Prints figures; asserts nothing about speed. On a busy machine compare the ratios of one run.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time

from safenet.trainer import Selection, start_run


def run(algo: str, env: str, workers: int, iterations: int, n_envs: int, out: str) -> tuple[list[dict], float]:
    sel = Selection.resolve(algo, env)
    probe = sel.compose(overrides=[f"trainer.n_envs={n_envs}"])
    trainer = start_run(sel, sel.compose(overrides=[
        f"trainer.n_envs={n_envs}", f"trainer.workers={workers}", f"run.dir={out}", "run.progress=none",
        "run.tensorboard=false", "trainer.eval_every_steps=-1", "trainer.total_steps=1"]))
    steps_per_iter = trainer.rollout_steps * n_envs
    trainer.cfg.trainer.total_steps = steps_per_iter * iterations
    del probe
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    return list(csv.DictReader(open(trainer.run.dir / "metrics.csv"))), wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="dec-mappo-l")
    p.add_argument("--env", default="safe_ant_8x1")
    p.add_argument("--iterations", type=int, default=6)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--workers", default="0,1,2")
    args = p.parse_args()
    out = tempfile.mkdtemp(prefix="ray_workers_")
    results = {}
    for w in [int(x) for x in args.workers.split(",")]:
        rows, wall = run(args.algo, args.env, w, args.iterations, args.n_envs, out)
        body = rows[1:] or rows                    # the first iteration pays start-up (numpy policy copy, caches)
        steps = [float(r["env_steps"]) - float(p["env_steps"]) for p, r in zip(rows, rows[1:])] or [float(rows[0]["env_steps"])]
        loop = [s / (float(r["time/collect_s"]) + float(r["time/update_s"])) for s, r in zip(steps, body)]
        collect = [s / float(r["time/collect_s"]) for s, r in zip(steps, body)]
        over = [float(r["time/workers_overhead_s"]) for r in body if r.get("time/workers_overhead_s")]
        results[w] = rows
        print(f"workers={w}: loop {statistics.median(loop):,.0f} env-steps/s, collection alone "
              f"{statistics.median(collect):,.0f} env-steps/s, iteration {statistics.median(float(r['time/collect_s']) + float(r['time/update_s']) for r in body):.3f} s"
              + (f", workers' overhead {1000 * statistics.median(over):.1f} ms/iteration" if over else "")
              + f" (median of {len(body)} iterations; whole run {wall:.1f} s incl. start-up)", flush=True)
    base = results.get(0)
    for w, rows in results.items():
        if w == 0 or base is None:
            continue
        keys = [k for k in base[0] if not k.startswith("time/")]
        same = len(rows) == len(base) and all(a.get(k) == b.get(k) for a, b in zip(base, rows) for k in keys)
        print(f"workers={w} metrics identical to workers=0: {same}")


if __name__ == "__main__":
    main()
