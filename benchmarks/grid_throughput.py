"""Throughput of the wireless grid and of the SAC training loop on it (figures, not assertions).

    .venv/bin/python benchmarks/grid_throughput.py [--env grid_wireless_3x3] [--steps 200000]

Prints env-steps/s of the raw batched game for several batch sizes (uniform random valid
actions), then of the whole `sac` training loop with the default config, and the loop's share of
time in collection vs update — all measured in this one run, so the ratios compare like with like.
"""
from __future__ import annotations

import argparse


from safenet.trainer import Selection

from common import raw_rate, timed_training


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default="grid_wireless_3x3")
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--run-dir", default="/tmp/safenet-bench")
    args = ap.parse_args()
    sel = Selection.resolve("sac", args.env)
    cfg = sel.compose(overrides=[f"trainer.total_steps={args.steps}", f"run.dir={args.run_dir}",
                                 "run.progress=none", "run.tensorboard=false", "trainer.eval_every_steps=-1"])
    print(f"{args.env}: raw batched game (uniform random actions)")
    rates = {}
    for b in (1, 8, 64, 512):
        rates[b] = raw_rate(sel, cfg, b)
        print(f"  B={b:4d}  {rates[b]:12,.0f} env-steps/s   ({rates[b] / rates[1]:6.1f}x B=1)")
    trainer, wall, collect, update = timed_training(sel, cfg)
    loop = trainer.env_steps / wall
    n_envs = int(cfg.trainer.n_envs)
    print(f"sac training loop, {n_envs} copies, {trainer.env_steps} env steps in {wall:.1f} s")
    print(f"  {loop:12,.0f} env-steps/s   ({loop / rates[8]:.2f}x the raw game at B=8)")
    print(f"  time: collect {collect:.1f} s ({100 * collect / wall:.0f}%), update {update:.1f} s "
          f"({100 * update / wall:.0f}%), other (logging, checkpoints) {wall - collect - update:.1f} s")


if __name__ == "__main__":
    main()
