"""Training throughput of the PPO family: env-steps/s of the whole loop and its env/update split.

    .venv/bin/python benchmarks/mappo_l_throughput.py --env safe_ant_8x1 \\
        --algos ippo,mappo-l,dec-mappo-l --steps 24000 [--threads 1,2] [--n-envs 8,16] [--repeat 3] \\
        [--kappa 1] [--set key=value ...]

For each thread count, batch size and algorithm, in this one process: a short training run without
evaluation, bracketed by two measurements of the raw batched game's own step rate (uniform random
actions, same batch size, 2 s each). The loop's env-steps/s (collect + update) is reported next to
the mean of the two raw rates, so the ratio compares like with like even on a machine whose speed
drifts; with ``--repeat`` the median over repeats is shown. Also printed: the seconds and share spent
stepping the environment (including the algorithm's ``act``) and updating, the update stages per
iteration, and the communication volume. ``--markdown`` adds a table for the reports.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile

import torch

from safenet.trainer import Selection

from common import raw_rate, timed_training


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="grid_wireless_3x3")
    ap.add_argument("--algos", default="ippo,mappo,happo,mappo-l,dec-mappo-l")
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--kappa", type=int, default=None, help="algo.kappa of dec-mappo-l (default: its own)")
    ap.add_argument("--threads", default="1", help="torch threads, a comma-separated list")
    ap.add_argument("--n-envs", default="", help="trainer.n_envs values, a comma-separated list (default: the config's)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--preset", default="")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    run_dir = tempfile.mkdtemp(prefix="safenet-throughput-")
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for n_envs in [int(b) for b in args.n_envs.split(",")] if args.n_envs else [None]:
            base = [f"trainer.total_steps={args.steps}", f"run.dir={run_dir}", "run.progress=none",
                    "run.tensorboard=false", "trainer.eval_every_steps=-1", f"trainer.torch_threads={threads}",
                    *([f"trainer.n_envs={n_envs}"] if n_envs else []), *args.set]
            for algo in args.algos.split(","):
                sel = Selection.resolve(algo, args.env)
                kappa = [f"algo.kappa={args.kappa}"] if args.kappa is not None and algo == "dec-mappo-l" else []
                cfg = sel.compose(preset=args.preset or None, overrides=[*base, *kappa])
                B = int(cfg.trainer.n_envs)
                runs = []
                for _ in range(args.repeat):
                    before = raw_rate(sel, cfg, B)
                    trainer, wall, collect, update = timed_training(sel, cfg)
                    after = raw_rate(sel, cfg, B)
                    raw = (before * after) ** 0.5
                    loop = trainer.env_steps / (collect + update)
                    runs.append((loop / raw, loop, raw, collect, update, trainer))
                ratio, loop, raw, collect, update, trainer = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
                last = trainer.run.metrics.read()[-1]
                stages = float(last.get("train/stages", 0))
                comm = float(last.get("comm/floats_per_update", 0))
                print(f"{args.env} threads={threads} B={B} {algo:12s} {loop:8,.0f} env-steps/s  raw {raw:7,.0f}  "
                      f"{ratio:.3f}x raw" + (f" (repeats {', '.join(f'{r[0]:.3f}' for r in runs)})" if len(runs) > 1 else "")
                      + f"  env+act {collect:5.1f} s ({100 * collect / (collect + update):3.0f}%)  update {update:5.1f} s"
                      f"  stages {stages:.0f}  comm/update {comm:,.0f}", flush=True)
                rows.append((threads, B, algo, loop, raw, ratio, 100 * update / (collect + update), stages))
    if args.markdown:
        print("\n| torch threads | B | algorithm | env-steps/s | raw game | × raw | update share | stages |")
        print("|---:|---:|---|---:|---:|---:|---:|---:|")
        for t, B, algo, loop, raw, ratio, share, stages in rows:
            print(f"| {t} | {B} | {algo} | {loop:,.0f} | {raw:,.0f} | {ratio:.2f} | {share:.0f} % | {stages:.0f} |")


if __name__ == "__main__":
    main()
