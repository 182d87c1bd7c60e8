"""Pieces the benchmark scripts share (imported as a sibling module: run the scripts as files)."""
from __future__ import annotations

import time

import numpy as np

from safenet.trainer import Selection, make_game


def raw_rate(sel: Selection, cfg, batch: int, seconds: float = 2.0) -> float:
    """Env steps per second of the bare game: ``batch`` copies stepped with uniform random actions."""
    game = make_game(sel, cfg, batch, seed=0)
    spec = game.spec
    rng = np.random.default_rng(0)
    if spec.action_kind == "discrete":
        actions = [(rng.random((batch, spec.n)) * np.asarray(spec.action_dims)).astype(np.int64) for _ in range(32)]
    else:
        actions = [rng.uniform(spec.action_low, spec.action_high, (batch, spec.n, spec.action_dim)) * spec.action_mask()
                   for _ in range(32)]
    game.reset(seed=0)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for a in actions:
            game.step(a)
        steps += len(actions) * batch
    return steps / (time.perf_counter() - t0)


def timed_training(sel: Selection, cfg):
    """Train one run; return ``(trainer, wall seconds, collect seconds, update seconds)`` from its metrics."""
    from safenet.trainer import start_run

    trainer = start_run(sel, cfg)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    rows = trainer.run.metrics.read()
    collect = sum(float(r["time/collect_s"]) for r in rows)
    update = sum(float(r["time/update_s"]) for r in rows)
    return trainer, wall, collect, update
