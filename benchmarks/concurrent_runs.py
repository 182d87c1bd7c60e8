"""Several training runs sharing one machine, with and without a CPU bound per run.

Starts ``--runs`` copies of the same ``safenet train`` at once (different seeds), waits for all, and
prints each run's training throughput (env steps over the summed collect + update time of its
iterations, from ``metrics.csv``) and wall time; then the same with ``trainer.cpus=<--cpus>``.

    python benchmarks/concurrent_runs.py --runs 2 4 --cpus 1
    python benchmarks/concurrent_runs.py --algo dmpo --env cacc_catchup --steps 30000 --runs 9 --cpus 1
"""
from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def launch(algo: str, env: str, steps: int, seed: int, run_dir: Path, extra: list[str]) -> subprocess.Popen:
    argv = [sys.executable, "-m", "safenet.cli", "train", "--algo", algo, "--env", env, f"seed={seed}",
            f"run.dir={run_dir}", f"run.name=s{seed}", "run.progress=none", "run.tensorboard=false",
            f"trainer.total_steps={steps}", "trainer.eval_every_steps=-1", *extra]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def throughput(run: Path) -> float:
    """Env steps per second of the training loop (collection + update) of a finished run."""
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    busy = sum(float(r["time/collect_s"]) + float(r["time/update_s"]) for r in rows)
    return float(rows[-1]["env_steps"]) / busy


def batch(args: argparse.Namespace, k: int, extra: list[str]) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        procs = [launch(args.algo, args.env, args.steps, seed, Path(tmp), extra) for seed in range(k)]
        for p in procs:
            _, err = p.communicate()
            if p.returncode:
                sys.exit(f"a run failed: {err.strip().splitlines()[-1] if err.strip() else p.returncode}")
        wall = time.perf_counter() - t0
        return [throughput(Path(tmp) / f"s{seed}") for seed in range(k)], wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algo", default="dec-mappo-l")
    ap.add_argument("--env", default="safe_ant_8x1")
    ap.add_argument("--steps", type=int, default=16000)
    ap.add_argument("--runs", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--cpus", type=int, default=1, help="trainer.cpus of the bounded batches")
    ap.add_argument("--extra", nargs="*", default=[], help="more key=value overrides for every run")
    args = ap.parse_args()
    print(f"{args.algo} on {args.env}, {args.steps} env steps per run; env-steps/s of each run's training loop")
    print(f"{'runs':>4} {'bound':>12} {'mean':>8} {'min':>8} {'max':>8} {'wall s':>7}")
    for k in args.runs:
        for label, extra in (("none", []), (f"cpus={args.cpus}", [f"trainer.cpus={args.cpus}"])):
            fps, wall = batch(args, k, [*args.extra, *extra])
            print(f"{k:>4} {label:>12} {statistics.mean(fps):>8.0f} {min(fps):>8.0f} {max(fps):>8.0f} {wall:>7.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
