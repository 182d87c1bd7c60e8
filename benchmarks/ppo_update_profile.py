"""Where a PPO-family iteration's CPU time goes: acting, advantages, critics, policies.

    .venv/bin/python benchmarks/ppo_update_profile.py --env safe_ant_8x1 --algos ippo,mappo-l,dec-mappo-l \\
        [--repeat 3] [--threads 1] [--set key=value ...]

Collects one rollout (``trainer.n_envs`` copies × the algorithm's rollout length) and then, for each
algorithm, times in CPU seconds of the calling thread (``time.thread_time``, which counts the work
done, not the waiting, so it moves less than wall time on a busy machine): ``act`` per call, and one
``update`` split into advantages (the critics' forward passes and GAE), the critics' training
(Eq. 23) and the policies' training (Eq. 22). The critics run in the calling thread here
(``algo.critic_overlap=false``) so that every part is counted. The minimum over ``--repeat`` updates of
the same rollout is shown.
"""
from __future__ import annotations

import argparse
import time

import torch

from safenet.rollout import Collector
from safenet.trainer import Selection, make_algorithm, make_game

PARTS = ("advantages", "update_critics", "update_policies")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="safe_ant_8x1")
    ap.add_argument("--algos", default="ippo,mappo-l,dec-mappo-l")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rollout = None
    print(f"| algorithm | act (ms/call) | advantages (s) | critics (s) | policies (s) | update (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.algos.split(","):
        sel = Selection.resolve(name, args.env)
        cfg = sel.compose(overrides=["algo.critic_overlap=false", *args.set])
        game = make_game(sel, cfg, int(cfg.trainer.n_envs), 0)
        algo = make_algorithm(sel, game.spec, cfg)
        if rollout is None:
            rollout, _ = Collector(game, seed=0).collect(algo, int(algo.rollout_steps))
        spent: dict[str, float] = {}
        cls = type(algo)
        originals = {p: getattr(cls, p) for p in PARTS}

        def timed(part):
            def run(self, *a, **kw):
                t = time.thread_time()
                try:
                    return originals[part](self, *a, **kw)
                finally:
                    spent[part] = spent.get(part, 0.0) + time.thread_time() - t
            return run

        for p in PARTS:
            setattr(algo, p, timed(p).__get__(algo))
        obs = rollout.obs[0]
        t = time.thread_time()
        for _ in range(200):
            algo.act(obs, {})
        act_ms = (time.thread_time() - t) / 200 * 1e3
        algo.update(rollout)                          # warm-up (allocations, first-call costs)
        best = None
        for _ in range(args.repeat):
            spent.clear()
            t = time.thread_time()
            algo.update(rollout)
            total = time.thread_time() - t
            if best is None or total < best[0]:
                best = (total, dict(spent))
        total, parts = best
        print(f"| {name} | {act_ms:.3f} | {parts['advantages']:.2f} | {parts['update_critics']:.2f} | "
              f"{parts['update_policies']:.2f} | {total:.2f} |", flush=True)
    print(f"\n{args.env}: one update of {rollout.steps:,} env steps ({rollout.obs.shape[1]} copies), "
          f"{args.threads} torch thread(s), CPU seconds of the calling thread, min of {args.repeat}")


if __name__ == "__main__":
    main()
