"""Training throughput of the PPO family: env-steps/s of the whole loop and its env/update split.

    .venv/bin/python benchmarks/mappo_l_throughput.py --env grid_wireless_3x3 \\
        --algos ippo,mappo,happo,mappo-l,dec-mappo-l --steps 20000 [--kappa 1] [--threads 1] [--set key=value ...]

For each algorithm, in this one process and one after the other: a short training run without
evaluation; prints env-steps/s of the full loop (collect + update), the seconds and share spent
stepping the environment (including the algorithm's ``act``) and updating, the number of update
stages per iteration, and the communication volume, next to the raw batched game's own step rate
(uniform random actions, same batch size) measured in the same run — ratios compare like with like.
"""
from __future__ import annotations

import argparse
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
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--preset", default="")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run_dir = tempfile.mkdtemp(prefix="safenet-throughput-")
    base = [f"trainer.total_steps={args.steps}", f"run.dir={run_dir}", "run.progress=none", "run.tensorboard=false",
            "trainer.eval_every_steps=-1", f"trainer.torch_threads={args.threads}", *args.set]
    print(f"{args.env}, {args.steps} env steps per algorithm, {args.threads} torch thread(s)")
    raw = None
    for algo in args.algos.split(","):
        sel = Selection.resolve(algo, args.env)
        kappa = [f"algo.kappa={args.kappa}"] if args.kappa is not None and algo == "dec-mappo-l" else []
        cfg = sel.compose(preset=args.preset or None, overrides=[*base, *kappa])
        if raw is None:
            raw = raw_rate(sel, cfg, int(cfg.trainer.n_envs))
            print(f"  raw game, B={int(cfg.trainer.n_envs)}: {raw:,.0f} env-steps/s")
        trainer, wall, collect, update = timed_training(sel, cfg)
        loop = trainer.env_steps / (collect + update)
        last = trainer.run.metrics.read()[-1]
        print(f"  {algo:12s} {loop:8,.0f} env-steps/s ({loop / raw:.3f}x raw)  env+act {collect:6.1f} s "
              f"({100 * collect / (collect + update):3.0f}%)  update {update:6.1f} s ({100 * update / (collect + update):3.0f}%)  "
              f"stages {float(last.get('train/stages', 0)):.0f}  comm/update {float(last.get('comm/floats_per_update', 0)):,.0f}  "
              f"wall {wall:.1f} s")


if __name__ == "__main__":
    main()
