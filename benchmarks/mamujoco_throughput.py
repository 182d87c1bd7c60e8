"""Throughput of the Safe MAMuJoCo games against raw MuJoCo and gymnasium-robotics' MaMuJoCo.

Measured in one run on one machine, every figure in environment steps per second (one step = one
control step of one copy, i.e. ``frame_skip`` physics steps):

* raw      — ``mujoco.mj_step(model, data, nstep=frame_skip)`` in a loop, one thread, on the very model
             our game compiles (no observation, reward or reset work);
* ours x1  — ``game.step`` with one copy and one thread (everything: actions in, obs/reward/cost out);
* ours xB  — ``game.step`` with B copies on ``--threads`` threads (steps of all copies counted);
* gym-rob. — gymnasium-robotics ``mamujoco_v1.parallel_env(...).step`` on the same scenario (if installed).

Targets (printed as PASS/FAIL, not asserted): ours x1 >= 0.85 x raw; ours xB >= 1.6 x ours x1 (with 2
threads); ours >= 2 x gymnasium-robotics on every scenario both have (best of x1 and xB).

    python benchmarks/mamujoco_throughput.py [--seconds 2] [--copies 16] [--threads 2] [--out docs/reports/...]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from safenet_mamujoco.game import make_task
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


def _timed(step, seconds: float) -> float:
    """Calls of ``step`` per second over about ``seconds`` (after a short warm-up)."""
    for _ in range(20):
        step()
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(50):
            step()
        n += 50
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def raw_rate(game, seconds: float) -> float:
    m = game.model
    d = mujoco.MjData(m)
    d.qpos[:] = game.sim.datas[0].qpos
    mujoco.mj_forward(m, d)
    ctrl = np.random.default_rng(0).uniform(-1, 1, (64, m.nu))
    k = [0]
    fs = game.frame_skip

    def step():
        d.ctrl[:] = ctrl[k[0] % 64]
        k[0] += 1
        mujoco.mj_step(m, d, nstep=fs)
    return _timed(step, seconds)


def ours_rate(task: str, copies: int, threads: int, seconds: float) -> float:
    game = make_task(task, num_envs=copies, threads=threads, seed=0)
    game.reset(seed=0)
    s = game.spec
    acts = np.random.default_rng(0).uniform(-1, 1, (64, copies, s.n, s.action_dim)) * s.action_mask()
    k = [0]

    def step():
        game.step(acts[k[0] % 64])
        k[0] += 1
    rate = _timed(step, seconds) * copies
    game.close()
    return rate


def gym_rate(scenario: str, conf: str, seconds: float) -> float | None:
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
    k = [0]

    def step():
        _, _, term, trunc, _ = env.step(acts[k[0] % 64])
        k[0] += 1
        if any(term.values()) or any(trunc.values()):
            env.reset()
    return _timed(step, seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    ap.add_argument("--copies", type=int, default=16, help="copies in the batched measurement")
    ap.add_argument("--threads", type=int, default=2, help="threads in the batched measurement")
    ap.add_argument("--out", default="docs/reports/safe_mamujoco_throughput.md")
    args = ap.parse_args()
    load0 = os.getloadavg()
    rows = []
    for task, ref in SCENARIOS:
        probe = make_task(task, seed=0)
        probe.reset(seed=0)
        raw = raw_rate(probe, args.seconds)
        probe.close()
        one = ours_rate(task, 1, 1, args.seconds)
        many = ours_rate(task, args.copies, args.threads, args.seconds)
        gym = gym_rate(*ref, args.seconds) if ref else None
        rows.append((task, ref, raw, one, many, gym))
        print(f"{task:32s} raw {raw:8.0f}  ours x1 {one:8.0f}  ours x{args.copies} {many:8.0f}  "
              f"gym-rob. {gym if gym is None else round(gym)}", flush=True)
    load1 = os.getloadavg()

    def ok(flag: bool) -> str:
        return "PASS" if flag else "FAIL"

    lines = [
        "# Safe MAMuJoCo throughput",
        "",
        f"Measured by `benchmarks/mamujoco_throughput.py` on {platform.node()} ({os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}), MuJoCo {mujoco.__version__}, {args.seconds:g} s per figure, "
        f"batched = {args.copies} copies on {args.threads} threads. Load average before / after: "
        f"{load0[0]:.2f} / {load1[0]:.2f} (other jobs share this machine, so figures move by some per cent).",
        "",
        "Environment steps per second (one step = one control step of one copy = `frame_skip` physics steps).",
        "",
        "| task | gymnasium-robotics scenario | raw mj_step | ours x1 | ours batched | gym-rob. | x1 / raw "
        "(>= 0.85) | batched / x1 (>= 1.6) | ours / gym-rob. (>= 2) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task, ref, raw, one, many, gym in rows:
        ratio_gym = f"{max(one, many) / gym:.2f} ({ok(max(one, many) >= 2 * gym)}; x1 {one / gym:.2f})" if gym else "-"
        lines.append(f"| {task} | {' '.join(ref) if ref else '-'} | {raw:.0f} | {one:.0f} | {many:.0f} | "
                     f"{gym:.0f} |" if gym else
                     f"| {task} | {' '.join(ref) if ref else '-'} | {raw:.0f} | {one:.0f} | {many:.0f} | - |")
        lines[-1] += (f" {one / raw:.2f} ({ok(one >= 0.85 * raw)}) | {many / one:.2f} ({ok(many >= 1.6 * one)}) | "
                      f"{ratio_gym} |")
    lines += ["", "Raw mj_step runs on the very model our game compiles (same frame skip); it does no "
              "observation, reward, cost, reset or `mj_rnePostConstraint` work, which Gymnasium and our game both do.",
              ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines[8:]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
