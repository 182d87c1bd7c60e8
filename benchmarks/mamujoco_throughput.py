"""Throughput of the Safe MAMuJoCo games against raw MuJoCo and gymnasium-robotics' MaMuJoCo.

Measured in one run on one machine, every figure in environment steps per second (one step = one
control step of one copy, i.e. ``frame_skip`` physics steps):

* raw      — ``mujoco.mj_step(model, data, nstep=frame_skip)`` in a loop, one thread, on the very model
             our game compiles, driving the agents' actuators with random actions (and the bomb with its
             push schedule, as the game does); no observation, reward, cost or reset work;
* raw xT   — the same on ``--threads`` threads, one ``MjData`` each: the parallel speed-up the machine
             gives MuJoCo alone at that moment (the ceiling for the batched figure);
* ours x1  — ``game.step`` with one copy and one thread (everything: actions in, obs/reward/cost out);
* ours xB  — ``game.step`` with B copies on ``--threads`` threads (steps of all copies counted);
* gym-rob. — gymnasium-robotics ``mamujoco_v1.parallel_env(...).step`` on the same scenario (if installed).

The machine may be shared, so the figures of one task are measured in ``--rounds`` rounds, each round
timing every variant for ``--seconds`` in turn, and the median of the rounds is reported: load that
comes and goes hits all variants alike. Single-thread variants are also timed in CPU time
(``time.thread_time``), which excludes the time the OS gives other processes.

Targets (printed as PASS/MISS, never asserted): ours x1 >= 0.85 x raw; ours xB >= 1.6 x ours x1 (2
threads); ours >= 2 x gymnasium-robotics on every scenario both have (the better of x1 and xB, as the
batched game is how our environment is used; x1 alone is printed beside it).

    python benchmarks/mamujoco_throughput.py [--seconds 0.4] [--rounds 5] [--copies 16] [--threads 2] [--out ...]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from safenet_mamujoco.game import MamujocoGame, make_task
from safenet_mamujoco.sim import mujoco

#: (our task, gymnasium-robotics scenario and partition or None)
SCENARIOS = [
    ("safety_ant_2x4_velocity", ("Ant", "2x4")),
    ("safety_halfcheetah_6x1_velocity", ("HalfCheetah", "6x1")),
    ("manyagent_ant_2x3", ("ManySegmentAnt", "2x3")),
    ("manyagent_ant_6x1", ("ManySegmentAnt", "6x1")),
    ("safe_ant_8x1", None),
    ("safe_manyagent_ant_2x3", None),
    ("safe_coupled_halfcheetah_12x1", None),
]

Stepper = Callable[[], int]      # does one step, returns the number of environment steps it made


def _window(step: Stepper, seconds: float) -> tuple[float, float]:
    """``(steps per wall second, steps per CPU second of this thread)`` over about ``seconds``."""
    n, w0, c0 = 0, time.perf_counter(), time.thread_time()
    while True:
        for _ in range(10):
            n += step()
        w = time.perf_counter() - w0
        if w >= seconds:
            return n / w, n / max(time.thread_time() - c0, 1e-9)


def raw_stepper(game: MamujocoGame) -> Stepper:
    m, fs = game.model, game.frame_skip
    d = mujoco.MjData(m)
    d.qpos[:] = game.sim.datas[0].qpos
    mujoco.mj_forward(m, d)
    k = game.sim.n_controls
    ctrl = np.random.default_rng(0).uniform(-1, 1, (64, k))
    agents = d.ctrl[:k]
    clock = game.sim.clock_control
    i = [0]

    def step() -> int:
        agents[:] = ctrl[i[0] & 63]
        if clock is not None:
            d.ctrl[clock[0]] = clock[1](d.time)
        i[0] += 1
        mujoco.mj_step(m, d, nstep=fs)
        return 1
    return step


def raw_parallel_stepper(game: MamujocoGame, threads: int, per_thread: int = 8) -> tuple[Stepper, Callable[[], None]]:
    """``threads`` threads each making ``per_thread`` raw steps on its own ``MjData`` per call."""
    steppers = [raw_stepper(game) for _ in range(threads)]
    work = [threading.Event() for _ in range(threads - 1)]
    done = [threading.Event() for _ in range(threads - 1)]
    stop = [False]

    def worker(j: int) -> None:
        while True:
            work[j].wait()
            work[j].clear()
            if stop[0]:
                return
            for _ in range(per_thread):
                steppers[j + 1]()
            done[j].set()

    pool = [threading.Thread(target=worker, args=(j,), daemon=True) for j in range(threads - 1)]
    for t in pool:
        t.start()

    def step() -> int:
        for e in work:
            e.set()
        for _ in range(per_thread):
            steppers[0]()
        for e in done:
            e.wait()
            e.clear()
        return threads * per_thread

    def close() -> None:
        stop[0] = True
        for e in work:
            e.set()
    return step, close


def ours_stepper(task: str, copies: int, threads: int) -> tuple[Stepper, MamujocoGame]:
    game = make_task(task, num_envs=copies, threads=threads, seed=0)
    game.reset(seed=0)
    s = game.spec
    acts = np.random.default_rng(0).uniform(-1, 1, (64, copies, s.n, s.action_dim)) * s.action_mask()
    i = [0]

    def step() -> int:
        game.step(acts[i[0] & 63])
        i[0] += 1
        return copies
    return step, game


def gym_stepper(scenario: str, conf: str) -> Stepper | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from gymnasium_robotics import mamujoco_v1

            env = mamujoco_v1.parallel_env(scenario, conf, agent_obsk=1)
    except Exception as exc:  # noqa: BLE001 - not installed, or the scenario does not build
        print(f"  gymnasium-robotics {scenario} {conf}: unavailable ({type(exc).__name__}: {exc})")
        return None
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    acts = [{a: rng.uniform(-1, 1, env.action_space(a).shape) for a in env.possible_agents} for _ in range(64)]
    i = [0]

    def step() -> int:
        _, _, term, trunc, _ = env.step(acts[i[0] & 63])
        i[0] += 1
        if any(term.values()) or any(trunc.values()):
            env.reset()
        return 1
    return step


def measure(task: str, ref, args) -> dict[str, tuple[float, float]]:
    """Median over rounds of (wall rate, CPU rate) of every variant of one task."""
    one, game1 = ours_stepper(task, 1, 1)
    many, game_b = ours_stepper(task, args.copies, args.threads)
    raw_par, close_par = raw_parallel_stepper(game1, args.threads)
    variants: dict[str, Stepper] = {"raw": raw_stepper(game1), "raw xT": raw_par, "ours x1": one, "ours xB": many}
    gym = gym_stepper(*ref) if ref else None
    if gym is not None:
        variants["gym"] = gym
    for step in variants.values():          # warm-up
        _window(step, 0.05)
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, step in variants.items():
            samples[name].append(_window(step, args.seconds))
    close_par()
    game1.close()
    game_b.close()
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in samples.items()}


def _loads(load: tuple[float, float, float]) -> str:
    return ", ".join(f"{x:.2f}" for x in load)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=0.4, help="seconds per variant per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per task (the median is reported)")
    ap.add_argument("--copies", type=int, default=16, help="copies in the batched measurement")
    ap.add_argument("--threads", type=int, default=2, help="threads in the batched measurement")
    ap.add_argument("--tasks", nargs="*", help="only these tasks (default: all scenarios)")
    ap.add_argument("--out", default="docs/reports/safe_mamujoco_throughput.md", help="report file ('' for none)")
    args = ap.parse_args()
    load0 = os.getloadavg()
    rows = []
    for task, ref in SCENARIOS:
        if args.tasks and task not in args.tasks:
            continue
        r = measure(task, ref, args)
        rows.append((task, ref, r))
        print(f"{task:32s} " + "  ".join(f"{k} {w:8.0f}" for k, (w, _) in r.items()), flush=True)
    load1 = os.getloadavg()

    def ok(flag: bool) -> str:
        return "PASS" if flag else "MISS"

    lines = [
        "# Safe MAMuJoCo throughput",
        "",
        f"Measured by `benchmarks/mamujoco_throughput.py` on {platform.node()} ({os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}), MuJoCo {mujoco.__version__}, median of {args.rounds} rounds "
        f"of {args.seconds:g} s per variant, batched = {args.copies} copies on {args.threads} threads. Load average "
        f"(1, 5, 15 min) before: {_loads(load0)}; after: {_loads(load1)}.",
        "",
        "Environment steps per second (one step = one control step of one copy = `frame_skip` physics steps); "
        "`cpu` ratios use each variant's steps per CPU second of its thread instead of per wall second.",
        "",
        "| task | raw mj_step | raw x T threads | ours x1 | ours batched | gym-rob. | x1 / raw (>= 0.85) "
        "| x1 / raw cpu | batched / x1 (>= 1.6) | raw xT / raw | ours / gym-rob. (>= 2) | x1 / gym-rob. cpu |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task, ref, r in rows:
        raw, rawp, one, many = r["raw"], r["raw xT"], r["ours x1"], r["ours xB"]
        cells = [task, f"{raw[0]:.0f}", f"{rawp[0]:.0f}", f"{one[0]:.0f}", f"{many[0]:.0f}"]
        gym = r.get("gym")
        cells.append(f"{gym[0]:.0f} ({' '.join(ref)})" if gym else "-")
        cells += [f"{one[0] / raw[0]:.2f} ({ok(one[0] >= 0.85 * raw[0])})", f"{one[1] / raw[1]:.2f}",
                  f"{many[0] / one[0]:.2f} ({ok(many[0] >= 1.6 * one[0])})", f"{rawp[0] / raw[0]:.2f}"]
        if gym:
            best = max(one[0], many[0])
            cells += [f"{best / gym[0]:.2f} ({ok(best >= 2 * gym[0])}; x1 {one[0] / gym[0]:.2f})",
                      f"{one[1] / gym[1]:.2f}"]
        else:
            cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Raw mj_step runs on the very model our game compiles (same frame skip); it does no observation, "
              "reward, cost, reset or `mj_rnePostConstraint` work, which Gymnasium and our game both do. "
              "`raw xT / raw` is what the machine's free cores allowed MuJoCo alone during the run: the batched "
              "figure cannot beat it.", ""]
    print("\n".join(lines[6:]))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
