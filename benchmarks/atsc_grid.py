"""Learners against the classic controllers on the SUMO ATSC grid: run the experiments, then the report.

Run (sequential: each run already uses ``trainer.n_envs`` SUMO worker processes)::

    python benchmarks/atsc_grid.py run --out runs/atsc --seeds 0 --steps 14400

Report (reads every run under ``--runs``; writes a markdown table, a JSON summary and curves)::

    python benchmarks/atsc_grid.py report --runs runs/atsc --out docs/reports

A run is ``<out>/<algo>__s<seed>``; one that finished is reused, one that was interrupted resumes.
The learners run with their Lagrangian on (dppo and dmpo have it off by default) and dec-mappo-l with
κ = 1. The controllers do not learn: they run ``--controller-episodes`` episodes per copy.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ENV = "atsc_grid_5x5"
LEARNERS = {
    "dppo": ["algo.lagrange.enabled=true"],
    "dmpo": ["algo.lagrange.enabled=true"],
    "dec-mappo-l": ["algo.kappa=1"],
}
CONTROLLERS = ("fixed-time", "max-pressure")
METRICS = ("ep_return", "ep_cost/spill_back", "env/queue", "env/waiting", "env/delay", "env/throughput",
           "env/teleports")


def _rows(run: Path) -> list[dict[str, str]]:
    path = run / "metrics.csv"
    return list(csv.DictReader(open(path))) if path.exists() else []


def run_all(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    safenet = str(Path(sys.executable).with_name("safenet"))
    jobs = [(a, s, args.steps, LEARNERS[a]) for a in args.algos if a in LEARNERS for s in args.seeds]
    jobs += [(a, s, 720 * args.n_envs * args.controller_episodes, []) for a in args.algos if a in CONTROLLERS
             for s in args.seeds]
    for algo, seed, steps, extra in jobs:
        run = out / f"{algo}__s{seed}"
        rows = _rows(run)
        if rows and float(rows[-1]["env_steps"]) >= steps:
            print(f"{run.name}: done", flush=True)
            continue
        common = [f"trainer.total_steps={steps}", f"trainer.n_envs={args.n_envs}", "trainer.eval_every_steps=0",
                  f"trainer.eval_episodes={args.eval_episodes}", "trainer.torch_threads=1", "run.progress=none",
                  *args.set]
        if run.exists() and (run / "config.yaml").exists():
            cmd = [safenet, "train", "--resume", str(run), *common]
        else:
            cmd = [safenet, "train", "--algo", algo, "--env", ENV, f"seed={seed}", f"run.dir={out}",
                   f"run.name={run.name}", *extra, *common]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


def _summary(run: Path) -> dict[str, float]:
    rows = _rows(run)
    if not rows:
        return {}
    last = {k: v for r in rows for k, v in r.items() if v not in ("", None)}   # latest value of every key
    out = {"env_steps": float(rows[-1]["env_steps"])}
    for m in METRICS:
        for prefix in ("eval", "rollout"):
            if f"{prefix}/{m}" in last:
                out[f"{prefix}/{m}"] = float(last[f"{prefix}/{m}"])
    out["limit"] = float(last.get("limit/spill_back", "nan"))
    return out


def report(args: argparse.Namespace) -> None:
    runs = sorted(p for p in Path(args.runs).iterdir() if (p / "metrics.csv").exists())
    out = Path(args.out)
    by_algo: dict[str, list[dict[str, float]]] = {}
    for r in runs:
        by_algo.setdefault(r.name.split("__")[0], []).append(_summary(r))
    (out / "atsc_grid.json").write_text(json.dumps(by_algo, indent=1))
    head = ["algorithm", "seeds", "env steps", "reward", "spill-back cost (limit)", "queue (veh/lane)",
            "waiting (s/veh)", "delay (s/trip)", "throughput (trips)", "teleports"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for algo, rs in by_algo.items():
        def cell(m: str, fmt: str = "{:.2f}") -> str:
            vals = [r[f"eval/{m}"] for r in rs if f"eval/{m}" in r]
            if not vals:
                return "–"
            s = fmt.format(np.mean(vals))
            return s + (f" ± {fmt.format(np.std(vals))}" if len(vals) > 1 else "")
        lines.append(f"| {algo} | {len(rs)} | {int(rs[0]['env_steps'])} | {cell('ep_return', '{:.0f}')} | "
                     f"{cell('ep_cost/spill_back')} ({rs[0]['limit']:g}) | {cell('env/queue')} | {cell('env/waiting', '{:.1f}')} | "
                     f"{cell('env/delay', '{:.0f}')} | {cell('env/throughput', '{:.0f}')} | {cell('env/teleports', '{:.0f}')} |")
    (out / "atsc_grid_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    draw(runs, by_algo, out / "atsc_grid.png")
    print(f"wrote {out / 'atsc_grid_table.md'}, {out / 'atsc_grid.json'}, {out / 'atsc_grid.png'}")


PANELS = (("ep_return", "episode reward (mean over intersections)"), ("ep_cost/spill_back", "spill-back cost per intersection"),
          ("env/queue", "queue (halting veh per incoming lane)"), ("env/delay", "delay (s per finished trip)"),
          ("env/waiting", "waiting (s standing per finished trip)"), ("env/throughput", "trips finished per episode"))


def draw(runs: list[Path], by_algo: dict[str, list[dict[str, float]]], path: Path) -> None:
    """Learners' training curves (mean ± std over seeds); the controllers' evaluation as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from safenet.plot import _read, aggregate

    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    for ax, (key, title) in zip(axes.flat, PANELS):
        for algo in by_algo:
            data = [_read(r) for r in runs if r.name.split("__")[0] == algo]
            if algo in CONTROLLERS:
                vals = [d[f"eval/{key}"][~np.isnan(d[f"eval/{key}"])][-1] for d in data if f"eval/{key}" in d]
                if vals:
                    ax.axhline(float(np.mean(vals)), linestyle="--", color="black" if algo == "fixed-time" else "grey",
                               label=f"{algo} (eval)")
                continue
            xs, ys = [], []
            for d in data:
                if f"rollout/{key}" in d:
                    ok = ~np.isnan(d[f"rollout/{key}"])
                    xs.append(d["env_steps"][ok])
                    ys.append(d[f"rollout/{key}"][ok])
            if xs:
                grid, mean, std = aggregate(xs, ys)
                line, = ax.plot(grid, mean, label=f"{algo} ({len(xs)} seed{'s' if len(xs) > 1 else ''})")
                if len(xs) > 1:
                    ax.fill_between(grid, mean - std, mean + std, alpha=0.2, color=line.get_color())
        if key == "ep_cost/spill_back":
            limits = [r["limit"] for rs in by_algo.values() for r in rs if np.isfinite(r.get("limit", np.nan))]
            if limits:
                ax.axhline(limits[0], color="red", linestyle=":", label="cost limit")
        ax.set_title(title)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{ENV}: learners (training episodes) vs classic controllers")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", default="runs/atsc")
    r.add_argument("--algos", nargs="+", default=[*CONTROLLERS, *LEARNERS])
    r.add_argument("--seeds", nargs="+", type=int, default=[0])
    r.add_argument("--steps", type=int, default=14400, help="env steps of each learner run (720 per episode)")
    r.add_argument("--n-envs", type=int, default=2)
    r.add_argument("--eval-episodes", type=int, default=2)
    r.add_argument("--controller-episodes", type=int, default=1)
    r.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run")
    q = sub.add_parser("report")
    q.add_argument("--runs", default="runs/atsc")
    q.add_argument("--out", default="docs/reports")
    args = p.parse_args()
    run_all(args) if args.cmd == "run" else report(args)


if __name__ == "__main__":
    main()
