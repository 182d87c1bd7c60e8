"""DADC on the two team benchmarks against their exact optima: learning curves and final gaps.

For each task (multi-access broadcast, demand response) trains `dadc` with the task's preset
(`configs/dadc-mabc.yaml`, `configs/dadc-demand-response.yaml`) for several seeds, one after the
other (niced, 1 torch thread), evaluating periodically; then evaluates each final policy on many
episodes (`safenet eval`), computes the optimum with the exact solver, and writes
`docs/reports/dadc.json` and one plot per task (`docs/reports/dadc_<task>.png`).

    .venv/bin/python benchmarks/dadc_report.py                         # 5 seeds x 2 tasks
    .venv/bin/python benchmarks/dadc_report.py --tasks mabc --seeds 0 --steps 100000   # a quick look
    .venv/bin/python benchmarks/dadc_report.py --tasks mabc_before_acting   # the literal channel timing
    .venv/bin/python benchmarks/dadc_report.py --mabc-optima     # MABC optima: timing x prescription class

Finished runs (a ``wall_s.txt`` in the run directory) are reused, so an interrupted report resumes.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TASKS = {
    # execution=shared: one coordinator computed once instead of once per agent. The agents' copies are
    # bit-identical (tests; and `--check-decentralized` trains a short run both ways and compares), so the
    # learning curves are the same at 1/n of the compute.
    "mabc": {"env": "multi_access_broadcast", "preset": "dadc-mabc", "solve": {},
             "overrides": ["algo.execution=shared"]},
    # the literal reading of appendix D.1's channel timing (see safenet_teams.mabc): same preset, same budget
    "mabc_before_acting": {"env": "multi_access_broadcast", "preset": "dadc-mabc",
                           "title": "multi_access_broadcast, channel_timing=before_acting",
                           "solve": {"channel_timing": "before_acting"},
                           "overrides": ["algo.execution=shared", "env.channel_timing=before_acting"]},
    "demand_response": {"env": "demand_response", "preset": "dadc-demand-response",
                        "solve": {"prescriptions": "randomised", "grid": 201}, "overrides": []},
}


def train(task: str, seed: int, run_dir: Path, steps: int | None, extra: Sequence[str] = (),
          name: str | None = None) -> tuple[Path, float]:
    t = TASKS[task]
    name = name or f"dadc-{task}-s{seed}"
    cmd = ["nice", "-n", "10", sys.executable, "-m", "safenet.cli", "train", "--algo", "dadc", "--env", t["env"],
           "--preset", t["preset"], f"seed={seed}", f"run.dir={run_dir}", f"run.name={name}", "run.progress=none",
           "run.tensorboard=false", "trainer.torch_threads=1", *t["overrides"], *extra]
    if steps:
        cmd += [f"trainer.total_steps={steps}", f"trainer.eval_every_steps={max(steps // 10, 1)}"]
    path, wall_file = run_dir / name, run_dir / name / "wall_s.txt"
    if wall_file.exists():                        # finished by an earlier invocation: reuse it
        return path, float(wall_file.read_text())
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    wall_file.write_text(f"{wall:.1f}\n")
    return path, wall


def final_eval(path: Path, episodes: int, seed: int = 12345) -> dict:
    """The run's last checkpoint, deterministic evaluation on ``episodes`` episodes: mean and standard error
    of the discounted team return (what the solver's finite-horizon optimum is the maximum of)."""
    import torch

    from safenet.rollout import Collector
    from safenet.trainer import algo_gamma, load_trained

    torch.set_num_threads(1)
    trained = load_trained(path, min(episodes, 500), seed)
    game, algo, cfg = trained.game, trained.algo, trained.cfg
    collector = Collector(game, seed=seed, gamma=algo_gamma(cfg))
    disc: list[float] = []
    while len(disc) < episodes:
        _, stats = collector.collect(algo, game.spec.episode_length, deterministic=True)
        disc.extend(float(np.mean(d)) for d in stats.disc_returns)
    d = np.array(disc[:episodes])
    return {"eval/ep_disc_return": float(d.mean()), "eval/ep_disc_return_se": float(d.std(ddof=1) / np.sqrt(len(d)))}


def curve(path: Path) -> tuple[list[int], list[float], float]:
    rows = list(csv.DictReader(open(path / "metrics.csv")))
    pts = [(int(float(r["env_steps"])), float(r["eval/ep_disc_return"])) for r in rows if r.get("eval/ep_disc_return")]
    div = max(float(r["train/copy_divergence"]) for r in rows)
    return [p[0] for p in pts], [p[1] for p in pts], div


def optimum(task: str) -> dict:
    from safenet_teams.solve import optimal_value

    return optimal_value(TASKS[task]["env"], 0.9, **TASKS[task]["solve"])


def plot(task: str, res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = res["runs"]
    steps = np.array(runs[0]["steps"])
    vals = np.array([r["curve"] for r in runs if len(r["curve"]) == len(steps)])
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    med, q1, q3 = np.median(vals, 0), np.percentile(vals, 25, 0), np.percentile(vals, 75, 0)
    ax.plot(steps, med, color="C0", label=f"dadc, median of {len(vals)} seeds")
    ax.fill_between(steps, q1, q3, color="C0", alpha=0.25, label="first to third quartile")
    for v in vals:
        ax.plot(steps, v, color="C0", alpha=0.25, lw=0.7)
    ax.axhline(res["optimum"]["horizon_value"], color="k", ls="--", label="exact optimum (solver)")
    # baselines sorted by value, labels alternating above / below their line so close ones stay legible
    for k, (name, v) in enumerate(sorted(res.get("baselines", {}).items(), key=lambda kv: kv[1])):
        ax.axhline(v, color="gray", ls=":", lw=1)
        ax.annotate(name, (steps[0], v), fontsize=7, color="gray", va="bottom" if k % 2 else "top")
    ax.set_xlabel("env steps")
    ax.set_ylabel("discounted team return (evaluation)")
    ax.set_title(f"DADC on {TASKS[task].get('title', TASKS[task]['env'])}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


BASELINES = {
    "mabc": {"only transmitter 1 may send (best constant)": 0.3675},
    "mabc_before_acting": {"only transmitter 1 may send (best constant)": 0.3675},   # ignores the information
    "demand_response": {"best constant deterministic": -1.0513, "deterministic optimum": -1.042541},
}


def mabc_optima(out: Path, fine_tol: float = 1e-7) -> dict:
    """Multi-access broadcast's optima for each channel timing x prescription class, the package's initial
    distribution against two others, and the merged-graph value at a tighter merge grid; written to
    ``dadc_mabc_optima.json``."""
    from safenet_teams.mabc import CHANNEL_TIMINGS, MabcConfig
    from safenet_teams.mabc_solver import PRESCRIPTION_CLASSES, solve_mabc

    def timed(**kw) -> dict:
        t0 = time.perf_counter()
        sol = solve_mabc(**kw)
        return {"value": sol.value, "horizon_value": sol.horizon_value, "beliefs": sol.n_beliefs,
                "method": sol.method, "merge_tol": sol.merge_tol, "initial_prescription": list(sol.initial_prescription),
                "seconds": round(time.perf_counter() - t0, 1)}

    res: dict = {"gamma": 0.9, "horizon": 100, "optima": {}, "starts": {}, "merge_check": {}}
    for timing in CHANNEL_TIMINGS:
        cfg = MabcConfig(channel_timing=timing)
        for cls in PRESCRIPTION_CLASSES:
            res["optima"][f"{timing}/{cls}"] = r = timed(cfg=cfg, horizon=100, prescriptions=cls)
            print(timing, cls, r, flush=True)
        p0, p1 = cfg.arrival_prob_0, cfg.arrival_prob_1
        empty = solve_mabc(cfg, start=(cfg.channel_idle_init, 0.0, 0.0)).value
        seen = (cfg.channel_idle_init * solve_mabc(cfg, start=(1.0, p0, p1)).value
                + (1 - cfg.channel_idle_init) * solve_mabc(cfg, start=(0.0, p0, p1)).value)
        res["starts"][timing] = {"package (buffers ~ Bernoulli(p), channel unseen 1/2)": res["optima"][f"{timing}/all"]["value"],
                                 "empty buffers, channel unseen 1/2": empty,
                                 "buffers ~ Bernoulli(p), first channel seen (1/2 each)": seen}
        print(timing, res["starts"][timing], flush=True)
        fine = timed(cfg=cfg, merge_tol=fine_tol, method="graph")
        coarse = timed(cfg=cfg, method="graph")
        res["merge_check"][timing] = {"coarse": coarse, "fine": fine, "difference": fine["value"] - coarse["value"]}
        print(timing, res["merge_check"][timing], flush=True)
    (out / "dadc_mabc_optima.json").write_text(json.dumps(res, indent=1))
    return res


def check_decentralized(tasks: Sequence[str], steps: int, run_dir: Path, out: Path) -> None:
    """Seed 0, ``steps`` steps, both execution modes: the logged learning metrics must coincide."""
    keys = ("rollout/ep_return", "train/loss_critic", "train/loss_actor", "train/entropy")
    result = {}
    for task in tasks:
        rows = {}
        for mode in ("shared", "decentralized"):
            path, wall = train(task, 0, run_dir, steps, [f"algo.execution={mode}", "trainer.eval_every_steps=-1"],
                               name=f"check-{task}-{mode}")
            rows[mode] = (list(csv.DictReader(open(path / "metrics.csv"))), wall)
        a, b = rows["shared"][0], rows["decentralized"][0]
        same = len(a) == len(b) and all(ra.get(k) == rb.get(k) for ra, rb in zip(a, b) for k in keys)
        div = max(float(r["train/copy_divergence"]) for r in b)
        result[task] = {"steps": steps, "iterations": len(a), "identical_metrics": same, "copy_divergence": div,
                        "wall_s_shared": round(rows["shared"][1], 1), "wall_s_decentralized": round(rows["decentralized"][1], 1)}
        print(task, result[task])
    path = out / "dadc_decentralized_check.json"
    path.write_text(json.dumps(result, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--steps", type=int, default=None, help="env steps per run (default: the preset's)")
    ap.add_argument("--eval-episodes", type=int, default=2000)
    ap.add_argument("--run-dir", default=str(ROOT / "runs" / "dadc-report"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "reports"))
    ap.add_argument("--check-decentralized", type=int, default=0, metavar="STEPS",
                    help="instead: train seed 0 of each task for STEPS steps with execution=shared and =decentralized "
                         "and compare their metrics")
    ap.add_argument("--plot-only", action="store_true", help="redraw the plots from the recorded dadc.json")
    ap.add_argument("--mabc-optima", action="store_true",
                    help="instead: multi-access broadcast's optima (channel timing x prescription class, initial "
                         "distributions, merge-grid check) to dadc_mabc_optima.json")
    args = ap.parse_args()
    if args.mabc_optima:
        mabc_optima(Path(args.out))
        return
    if args.plot_only:
        report = json.loads((Path(args.out) / "dadc.json").read_text())
        for task in args.tasks:
            if task in report:
                plot(task, report[task], Path(args.out) / f"dadc_{task}.png")
        return
    if args.check_decentralized:
        check_decentralized(args.tasks, args.check_decentralized, Path(args.run_dir), Path(args.out))
        return
    out, run_dir = Path(args.out), Path(args.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "dadc.json"
    for task in args.tasks:
        runs = []
        trained = [(seed, *train(task, seed, run_dir, args.steps)) for seed in args.seeds]
        opt = optimum(task)
        print(f"{task}: optimum {opt['horizon_value']:.6f} ({opt['horizon']} steps), {opt['value']:.6f} (infinite)")
        for seed, path, wall in trained:
            steps, values, div = curve(path)
            ev = final_eval(path, args.eval_episodes)
            final = ev["eval/ep_disc_return"]
            se = ev.get("eval/ep_disc_return_se")
            runs.append({"seed": seed, "steps": steps, "curve": values, "final": final, "final_se": se,
                         "gap": opt["horizon_value"] - final, "wall_s": round(wall, 1), "copy_divergence": div})
            print(f"  seed {seed}: final {final:.4f}, gap {opt['horizon_value'] - final:.4f}, "
                  f"copy divergence {div}, {wall:.0f} s")
        # merge with seeds recorded by earlier invocations (seeds may be run in separate processes)
        old = (json.loads(report_path.read_text()) if report_path.exists() else {}).get(task, {})
        mine = {r["seed"] for r in runs}
        runs = sorted([r for r in old.get("runs", []) if r["seed"] not in mine] + runs, key=lambda r: r["seed"])
        gaps = np.array([r["gap"] for r in runs])
        res = {"optimum": opt, "runs": runs, "baselines": BASELINES[task], "eval_episodes": args.eval_episodes,
               "gap_mean": float(gaps.mean()), "gap_std": float(gaps.std(ddof=1)) if len(gaps) > 1 else 0.0,
               "gap_median": float(np.median(gaps)), "wall_s_total": float(sum(r["wall_s"] for r in runs))}
        # re-read just before writing: the two tasks may run as two processes side by side
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        report[task] = res
        report_path.write_text(json.dumps(report, indent=1))
        plot(task, res, out / f"dadc_{task}.png")
        print(f"  gap mean {res['gap_mean']:.4f} ± {res['gap_std']:.4f}, median {res['gap_median']:.4f}; "
              f"{res['wall_s_total']:.0f} s")


if __name__ == "__main__":
    main()
