"""Reward and cost curves of the PPO family over seeds at one env-step budget (and κ sweeps).

    .venv/bin/python benchmarks/mappo_l_curves.py --env grid_wireless_3x3 \\
        --algos dec-mappo-l,mappo-l,ippo --seeds 3 --steps 300000 --jobs 2 --out docs/reports/mappo_l_grid
    .venv/bin/python benchmarks/mappo_l_curves.py --env grid_wireless_5x5 --algos dec-mappo-l \\
        --kappas 1,2,3,4 --algos-too mappo-l --seeds 2 --steps 300000 --out docs/reports/mappo_l_kappa

Every (algorithm, κ, seed) is one ``safenet train`` process (``--jobs`` at a time, one torch thread
each); finished runs found under ``--run-dir`` are reused, so an interrupted sweep resumes and a
finished one only redraws. Writes ``<out>.json`` (final reward/cost per run and mean ± std over
seeds, in the last ``--tail`` fraction of the budget; wall time; env-steps/s; communication) and
``<out>.png`` (curves: mean ± std over seeds, the cost limit dashed). ``--set key=value`` passes
extra overrides to every run (e.g. ``--set algo.reward_scale=0.01``), ``--set-safe key=value`` to the
constrained algorithms only (``algo.lagrange.*``), ``--preset`` a preset.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def label_of(algo: str, kappa: int | None) -> str:
    return algo if kappa is None else f"{algo} k={kappa}"


def read_rows(run: Path) -> list[dict[str, float]]:
    path = run / "metrics.csv"
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(fh)]


def train(args, algo: str, kappa: int | None, seed: int) -> Path:
    name = f"{label_of(algo, kappa).replace(' ', '_').replace('=', '')}-s{seed}"
    run = Path(args.run_dir) / args.env / name
    rows = read_rows(run)
    if rows and rows[-1]["env_steps"] >= args.steps:
        return run                                             # finished earlier: reuse
    exe = Path(sys.executable).with_name("safenet")
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "safenet.cli"])]
    if run.exists() and (run / "checkpoints").exists():
        cmd += ["train", "--resume", str(run), f"trainer.total_steps={args.steps}"]
    else:
        cmd += ["train", "--algo", algo, "--env", args.env, *(["--preset", args.preset] if args.preset else []),
                f"seed={seed}", f"trainer.total_steps={args.steps}", f"run.dir={run.parent}", f"run.name={name}",
                "run.progress=plain", "run.tensorboard=false", "trainer.torch_threads=1",
                "trainer.eval_every_steps=-1", *([f"algo.kappa={kappa}"] if kappa is not None else []), *args.set,
                *(args.set_safe if algo.endswith("-l") else [])]
    t0 = time.perf_counter()
    with open(Path(args.run_dir) / f"{args.env}-{name}.log", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: safenet train exited with {proc.returncode}; see {log.name}")
    print(f"  {name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    return run


def tail_mean(rows: list[dict[str, float]], key: str, frac: float) -> float:
    last = rows[-1]["env_steps"]
    vals = [r[key] for r in rows if r["env_steps"] >= (1 - frac) * last and key in r]
    return float(np.mean(vals)) if vals else float("nan")


def summarise(runs: dict[str, list[Path]], frac: float) -> dict:
    out: dict = {}
    for label, paths in runs.items():
        per_seed = []
        for p in paths:
            rows = read_rows(p)
            cost_keys = sorted({k for r in rows for k in r if k.startswith(("rollout/ep_cost/", "rollout/ep_cost_max/"))})
            limits = {k: r[k] for r in rows[-1:] for k in r if k.startswith("limit/")}
            per_seed.append({
                "run": str(p), "env_steps": rows[-1]["env_steps"],
                "reward": tail_mean(rows, "rollout/ep_return", frac),
                **{k.replace("rollout/ep_", ""): tail_mean(rows, k, frac) for k in cost_keys},
                **limits,
                "lagrange": {k.split("/", 2)[2]: tail_mean(rows, k, frac) for k in rows[-1] if k.startswith("train/lagrange/")},
                "train_s": sum(r.get("time/collect_s", 0) + r.get("time/update_s", 0) for r in rows),
                "collect_s": sum(r.get("time/collect_s", 0) for r in rows),
                "update_s": sum(r.get("time/update_s", 0) for r in rows),
                "comm_floats_per_step": rows[-1].get("comm/floats_per_step", float("nan")),
                "comm_floats_per_update": rows[-1].get("comm/floats_per_update", float("nan")),
            })
        keys = [k for k, v in per_seed[0].items() if isinstance(v, float)]
        out[label] = {"seeds": per_seed,
                      "mean": {k: float(np.mean([s[k] for s in per_seed])) for k in keys},
                      "std": {k: float(np.std([s[k] for s in per_seed])) for k in keys}}
        for s in per_seed:
            s["env_steps_per_s"] = s["env_steps"] / max(s["train_s"], 1e-9)
        out[label]["mean"]["env_steps_per_s"] = float(np.mean([s["env_steps_per_s"] for s in per_seed]))
    return out


def smooth(y: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or len(y) < width:
        return y
    k = np.ones(width) / width
    return np.convolve(np.pad(y, (width // 2, width - 1 - width // 2), mode="edge"), k, mode="valid")


def plot(runs: dict[str, list[Path]], out: Path, title: str, width: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from safenet.plot import aggregate

    data = {label: [read_rows(p) for p in paths] for label, paths in runs.items()}
    first = next(iter(data.values()))[0]
    costs = sorted({k.split("/", 2)[2] for r in first for k in r if k.startswith("rollout/ep_cost/")})
    panels = [("rollout/ep_return", "episode reward (mean over agents)")]
    panels += [(f"rollout/ep_cost/{c}", f"episode cost: {c} (mean over agents)") for c in costs]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (key, ylabel) in zip(axes[0], panels):
        for label, seeds in data.items():
            xs = [np.array([r["env_steps"] for r in rows if key in r]) for rows in seeds]
            ys = [smooth(np.array([r[key] for r in rows if key in r]), width) for rows in seeds]
            grid, mean, std = aggregate(xs, ys)
            line, = ax.plot(grid, mean, label=f"{label} ({len(seeds)} seeds)")
            ax.fill_between(grid, mean - std, mean + std, alpha=0.2, color=line.get_color())
        if key != "rollout/ep_return":
            lim = first[-1].get(f"limit/{key.split('/', 2)[2]}")
            if lim is not None:
                ax.axhline(lim, color="black", linestyle="--", label="cost limit")
        ax.set_xlabel("environment steps")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="grid_wireless_3x3")
    ap.add_argument("--algos", default="dec-mappo-l,mappo-l,ippo", help="comma-separated algorithm names")
    ap.add_argument("--kappas", default="", help="comma-separated κ values: runs dec-mappo-l once per κ")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    ap.add_argument("--steps", type=int, default=300_000)
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (one torch thread each)")
    ap.add_argument("--preset", default="")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    ap.add_argument("--set-safe", action="append", default=[], metavar="KEY=VALUE",
                    help="override for the constrained algorithms only (e.g. algo.lagrange.method=pid)")
    ap.add_argument("--run-dir", default="/tmp/safenet-mappo-l")
    ap.add_argument("--out", default="docs/reports/mappo_l_curves")
    ap.add_argument("--tail", type=float, default=0.1, help="fraction of the budget the final numbers average")
    ap.add_argument("--smooth", type=int, default=5, help="moving-average width (iterations) of the plotted curves")
    args = ap.parse_args()
    jobs = [(a, None) for a in args.algos.split(",") if a]
    jobs += [("dec-mappo-l", int(k)) for k in args.kappas.split(",") if k]
    Path(args.run_dir).mkdir(parents=True, exist_ok=True)
    tasks = [(a, k, s) for a, k in jobs for s in range(args.seeds)]
    print(f"{len(tasks)} runs of {args.steps} env steps on {args.env}, {args.jobs} at a time", flush=True)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = list(pool.map(lambda t: train(args, *t), tasks))
    runs: dict[str, list[Path]] = {}
    for (a, k, _), path in zip(tasks, done):
        runs.setdefault(label_of(a, k), []).append(path)
    summary = summarise(runs, args.tail)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"env": args.env, "steps": args.steps, "seeds": args.seeds, "tail": args.tail, "set": args.set,
            "set_safe": args.set_safe,
            "preset": args.preset}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": summary}, indent=1))
    plot(runs, out, f"{args.env}: {args.seeds} seeds, {args.steps} env steps", args.smooth)
    print(f"final {int(100 * args.tail)}% of the budget, mean ± std over seeds:")
    for label, s in summary.items():
        m, sd = s["mean"], s["std"]
        costs = "  ".join(f"{k} {m[k]:.3g} ± {sd[k]:.2g}" for k in m if k.startswith("cost/"))
        print(f"  {label:22s} reward {m['reward']:.4g} ± {sd['reward']:.2g}  {costs}  "
              f"{m['env_steps_per_s']:.0f} env-steps/s")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
