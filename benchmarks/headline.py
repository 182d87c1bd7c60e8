"""The headline evidence: DEC-MAPPO-L against MAPPO-L and IPPO on Safe Ant 8x1, seeds × a long budget.

    .venv/bin/python benchmarks/headline.py train --steps 5000000 --chunk 500000 --jobs 2
    .venv/bin/python benchmarks/headline.py report            # eval 32 episodes each, json + png + table
    .venv/bin/python benchmarks/headline.py gif --labels dec-mappo-l-k1   # a GIF of seed 0's policy

Every run is an ordinary run of the headline command with the environment's defaults (only the seed,
κ and where the run is written are set), kept in ``docs/reports/runs/headline-<label>-s<seed>/`` with
its ``config.yaml``, ``meta.json``, ``metrics.csv`` and latest checkpoint, so anyone can evaluate it or
extend it (``safenet train --resume <dir> trainer.total_steps=...``). ``train`` goes round by round:
each round takes every unfinished run ``--chunk`` env steps further (resuming it), ``--jobs`` at a
time, so that an interrupted session leaves all runs at about the same budget. Stop it with Ctrl-C or
``kill -TERM <pid>``: the runs in progress checkpoint and no further run starts. Re-running continues
where the runs stand. ``report`` evaluates each run's latest checkpoint with ``safenet eval --episodes
32 --json`` and writes ``<out>.json``, ``<out>.png`` (return, cost against the limit, episode length:
mean ± std over seeds) and ``<out>_table.md`` (per algorithm, and the communication per update).
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from mappo_l_curves import read_rows  # noqa: E402  (the metrics rows of a run, as floats)
ENV = "safe_ant_8x1"
# label -> (algorithm, extra overrides)
VARIANTS = {
    "dec-mappo-l-k1": ("dec-mappo-l", ["algo.kappa=1"]),
    "dec-mappo-l": ("dec-mappo-l", []),
    "mappo-l": ("mappo-l", []),
    "ippo": ("ippo", []),
}


def safenet_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("safenet")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "safenet.cli"]


def relative(path: Path) -> str:
    """``path`` relative to the repository when inside it (so committed configs name no machine's folders)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def steps_of(run: Path) -> int:
    rows = read_rows(run)
    return int(rows[-1]["env_steps"]) if rows else 0


def run_dir(args, label: str, seed: int) -> Path:
    return Path(args.runs) / f"headline-{label}-s{seed}"


#: set by Ctrl-C / SIGTERM: the runs in progress checkpoint and stop, no further run is started
STOP = threading.Event()
CHILDREN: set[subprocess.Popen] = set()


def train_to(args, label: str, seed: int, target: int) -> None:
    if STOP.is_set():
        return
    run = run_dir(args, label, seed)
    algo, extra = VARIANTS[label]
    if (run / "checkpoints" / "latest").exists():
        cmd = [*safenet_cmd(), "train", "--resume", str(run), f"trainer.total_steps={target}"]
    else:
        cmd = [*safenet_cmd(), "train", "--algo", algo, "--env", ENV, f"seed={seed}", *extra,
               f"trainer.total_steps={target}", f"run.dir={relative(run.parent)}", f"run.name={run.name}",
               "run.tensorboard=false", "run.progress=plain", "run.log_interval_s=120",
               f"trainer.cpus={args.cpus}", "trainer.keep_checkpoints=1", *args.set]
    t0 = time.perf_counter()
    log = run.parent / f"{run.name}.log"
    run.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        CHILDREN.add(proc)
        proc.wait()
        CHILDREN.discard(proc)
    if proc.returncode != 0 and not STOP.is_set():
        raise RuntimeError(f"{run.name}: safenet train exited with {proc.returncode}; see {log}")
    print(f"  {run.name}: at {steps_of(run)} env steps ({time.perf_counter() - t0:.0f} s)", flush=True)


def _stop(signum, frame) -> None:  # noqa: ARG001
    if not STOP.is_set():
        print("stopping: the runs in progress write a checkpoint; no further run starts", flush=True)
    STOP.set()
    if signum == signal.SIGTERM:            # Ctrl-C reaches the runs itself (same process group); a kill does not
        for child in list(CHILDREN):
            child.send_signal(signal.SIGTERM)


def cmd_train(args) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    labels = args.labels.split(",")
    runs = [(label, s) for s in range(args.seeds) for label in labels]
    while True:
        todo = [(label, s, min(args.steps, steps_of(run_dir(args, label, s)) + args.chunk)) for label, s in runs
                if steps_of(run_dir(args, label, s)) < args.steps]
        if not todo or STOP.is_set():
            break
        print(f"round: {len(todo)} runs to {max(t for *_, t in todo)} env steps, {args.jobs} at a time", flush=True)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(lambda t: train_to(args, *t), todo))
    print("stopped; re-run the same command to continue" if STOP.is_set() else f"all runs at {args.steps} env steps")


def tail_mean(rows: list[dict[str, float]], key: str, frac: float, last: float | None = None) -> float:
    """Mean of ``key`` over the rows in the last ``frac`` of the steps up to ``last`` (default: the run's end)."""
    last = rows[-1]["env_steps"] if last is None else last
    vals = [r[key] for r in rows if (1 - frac) * last < r["env_steps"] <= last and key in r]
    return float(np.mean(vals)) if vals else float("nan")


def evaluate(run: Path, episodes: int) -> dict:
    out = subprocess.run([*safenet_cmd(), "eval", str(run), "--episodes", str(episodes), "--json"],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"safenet eval {run}: {out.stderr.strip()[-400:]}")
    return json.loads(out.stdout[out.stdout.index("{"):])


def cost_of(metrics: dict, prefix: str) -> float:
    """The episode cost of the constraint: its max over agents where the run logs one."""
    keys = [k for k in metrics if k.startswith(prefix + "ep_cost_max/")] or \
           [k for k in metrics if k.startswith(prefix + "ep_cost/")]
    return float(max(metrics[k] for k in keys)) if keys else float("nan")


def cap_switches(run: Path) -> list[dict]:
    """Where the run was resumed with a new ``algo.lagrange_cap`` (``meta.json``'s ``"resumes"``)."""
    try:
        resumes = json.loads((run / "meta.json").read_text()).get("resumes", [])
    except (OSError, ValueError):
        return []
    return [{"env_steps": r["env_steps"], "lagrange_cap": o.split("=", 1)[1]} for r in resumes
            for o in r.get("overrides", []) if o.startswith("algo.lagrange_cap=")]


def cmd_report(args) -> None:
    labels = args.labels.split(",")
    results, curves = [], {}
    limit = None
    for label in labels:
        for seed in range(args.seeds):
            run = run_dir(args, label, seed)
            rows = read_rows(run)
            if not rows:
                continue
            curves.setdefault(label, []).append(rows)
            limit = rows[-1].get("limit/wall", limit)
            ev = evaluate(run, args.episodes) if args.episodes else {}
            evm = {k.removeprefix("eval/"): v for k, v in ev.items()}
            last = {k: tail_mean(rows, k, 0.1) for k in rows[-1]
                    if k.startswith(("rollout/ep_", "train/lagrange"))}
            results.append({
                "algo": label, "seed": seed, "env_steps": int(rows[-1]["env_steps"]),
                "run_dir": str(run.relative_to(ROOT) if run.is_absolute() else run),
                "eval": {"ep_return": evm.get("ep_return"), "ep_cost": cost_of(evm, ""),
                         "ep_length": evm.get("ep_length")} if ev else None,
                "train_last10": {"ep_return": last.get("rollout/ep_return"), "ep_cost": cost_of(last, "rollout/"),
                                 "ep_length": last.get("rollout/ep_length"),
                                 "lagrange": last.get("train/lagrange/wall")},
                "lagrange_cap_switches": cap_switches(run),
                "floats_per_update": rows[-1].get("comm/floats_per_update"),
                "train_s": sum(r.get("time/collect_s", 0) + r.get("time/update_s", 0) for r in rows),
            })
            print(f"  {label} s{seed}: {results[-1]['env_steps']} steps, eval {results[-1]['eval']}", flush=True)
    # every run over the same stretch of training: the last 10 % of the smallest budget among the runs
    common = min(r["env_steps"] for r in results)
    for r in results:
        rows = curves[r["algo"]][[x["seed"] for x in results if x["algo"] == r["algo"]].index(r["seed"])]
        keys = {k for row in rows for k in row if k.startswith("rollout/ep_")}
        at = {k: tail_mean(rows, k, 0.1, common) for k in keys}
        r["train_at_common_budget"] = {"env_steps": common, "ep_return": at.get("rollout/ep_return"),
                                       "ep_cost": cost_of(at, "rollout/"), "ep_length": at.get("rollout/ep_length")}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"env": ENV, "cost_limit": limit, "common_budget": common,
                                                    "runs": results}, indent=1))
    write_table(results, limit, out.with_name(out.name + "_table.md"))
    plot(curves, limit, out.with_suffix(".png"), args.smooth)
    print(f"wrote {out.with_suffix('.json')}, {out.with_suffix('.png')} and {out.name}_table.md")


def write_table(results: list[dict], limit: float | None, path: Path) -> None:
    def ms(vals: list[float]) -> str:
        vals = [v for v in vals if v is not None and np.isfinite(v)]
        return f"{np.mean(vals):.4g} ± {np.std(vals):.2g}" if vals else "—"

    lines = [f"| algorithm | seeds | env steps | eval return | eval cost (limit {limit}) | eval length | "
             "train return (last 10 %) | train cost (last 10 %) | train length | floats per update |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label in dict.fromkeys(r["algo"] for r in results):
        rs = [r for r in results if r["algo"] == label]
        if len({r["env_steps"] for r in rs}) > 1:             # seeds at different budgets: no mean
            lines.append(f"| `{label}` | {len(rs)} | {min(r['env_steps'] for r in rs):,}–{max(r['env_steps'] for r in rs):,} "
                         f"| budgets differ: see the rows per run | | | | | | {rs[0]['floats_per_update']:,.0f} |")
            continue
        ev = [r["eval"] or {} for r in rs]
        tl = [r["train_last10"] for r in rs]
        lines.append(f"| `{label}` | {len(rs)} | {min(r['env_steps'] for r in rs):,} | "
                     f"{ms([e.get('ep_return') for e in ev])} | {ms([e.get('ep_cost') for e in ev])} | "
                     f"{ms([e.get('ep_length') for e in ev])} | {ms([t['ep_return'] for t in tl])} | "
                     f"{ms([t['ep_cost'] for t in tl])} | {ms([t['ep_length'] for t in tl])} | "
                     f"{rs[0]['floats_per_update']:,.0f} |")
    common = results[0]["train_at_common_budget"]["env_steps"]
    lines += ["", f"Training episodes over the same stretch for every run ({0.9 * common:,.0f}–{common:,} env steps), "
              "mean ± std over seeds:", "", f"| algorithm | seeds | return | cost (limit {limit}) | length |", "|---|---|---|---|---|"]
    for label in dict.fromkeys(r["algo"] for r in results):
        at = [r["train_at_common_budget"] for r in results if r["algo"] == label]
        lines.append(f"| `{label}` | {len(at)} | {ms([a['ep_return'] for a in at])} | {ms([a['ep_cost'] for a in at])} | "
                     f"{ms([a['ep_length'] for a in at])} |")
    lines += ["", "Per run:", "", "| run | env steps | eval return | eval cost | eval length | train return | train cost | "
              "train length | λ |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        e, t = r["eval"] or {}, r["train_last10"]
        f = lambda v, d=4: "—" if v is None or not np.isfinite(v) else f"{v:.{d}g}"
        lines.append(f"| `{Path(r['run_dir']).name}` | {r['env_steps']:,} | {f(e.get('ep_return'))} | {f(e.get('ep_cost'))} | "
                     f"{f(e.get('ep_length'))} | {f(t['ep_return'])} | {f(t['ep_cost'], 3)} | {f(t['ep_length'])} | "
                     f"{f(t.get('lagrange'), 3)} |")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def smooth(y: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or len(y) < width:
        return y
    return np.convolve(np.pad(y, (width // 2, width - 1 - width // 2), mode="edge"), np.ones(width) / width, "valid")


def plot(curves: dict[str, list[list[dict]]], limit: float | None, path: Path, width: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from safenet.plot import aggregate

    panels = [("rollout/ep_return", "episode return", None), ("rollout/ep_cost_max/wall", "episode cost (max over agents)", limit),
              ("rollout/ep_length", "episode length (steps)", None), ("train/lagrange_max/wall", "λ (max over agents)", None)]
    fig, axes = plt.subplots(1, 4, figsize=(22, 4.4))
    for ax, (key, ylabel, line_at) in zip(axes, panels):
        for label, seeds in curves.items():
            k = key if any(key in r for r in seeds[0]) else key.replace("ep_cost_max", "ep_cost")
            if not any(k in r for r in seeds[0]):          # e.g. ippo has no λ: keep its colour, draw nothing
                ax.plot([], [])
                continue
            xs = [np.array([r["env_steps"] for r in rows if k in r]) for rows in seeds]
            ys = [smooth(np.array([r[k] for r in rows if k in r]), width) for rows in seeds]
            grid, mean, std = aggregate(xs, ys)
            ln, = ax.plot(grid, mean, label=f"{label} ({len(seeds)} seeds; thin: each seed)")
            ax.fill_between(grid, mean - std, mean + std, alpha=0.2, color=ln.get_color())
            for x, y in zip(xs, ys):                        # every seed to its own budget
                ax.plot(x, y, color=ln.get_color(), linewidth=0.6, alpha=0.6)
        if line_at is not None:
            ax.axhline(line_at, color="black", linestyle="--", label=f"limit {line_at}")
            ax.set_yscale("symlog", linthresh=1.0)
            ax.set_ylim(bottom=0)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{ENV}: mean ± std over seeds where all seeds have data, each seed thin "
                 f"(training episodes, moving average of {width} iterations)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cmd_gif(args) -> None:
    """``safenet eval --video`` of the first label's seed-0 run, then every 2nd frame at half size."""
    from PIL import Image

    run = run_dir(args, args.labels.split(",")[0], 0)
    raw = Path(args.out).with_name(Path(args.out).name + "_raw.gif")
    out = subprocess.run([*safenet_cmd(), "eval", str(run), "--episodes", "1", "--video", str(raw),
                          "--video-steps", str(args.video_steps)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"safenet eval --video {run}: {out.stderr.strip()[-400:]}")
    im = Image.open(raw)
    frames, durations = [], []
    for i in range(0, im.n_frames, 2):
        im.seek(i)
        frames.append(im.convert("RGB").resize((im.width // 2, im.height // 2)).quantize(64))
        durations.append(2 * im.info.get("duration", 50))
    gif = Path(args.out).with_suffix(".gif")
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=durations, loop=0, optimize=True)
    raw.unlink()
    print(f"wrote {gif} ({gif.stat().st_size / 1e6:.1f} MB, {len(frames)} frames) from {run.name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("train", "report", "gif"))
    ap.add_argument("--labels", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    ap.add_argument("--steps", type=int, default=5_000_000, help="train: the budget every run is taken to")
    ap.add_argument("--chunk", type=int, default=500_000, help="train: env steps per run per round")
    ap.add_argument("--jobs", type=int, default=2, help="train: runs at a time")
    ap.add_argument("--cpus", type=int, default=1, help="train: trainer.cpus of each run")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="train: extra override of new runs")
    ap.add_argument("--runs", default=str(ROOT / "docs/reports/runs"))
    ap.add_argument("--episodes", type=int, default=32, help="report: evaluation episodes per run (0: none)")
    ap.add_argument("--smooth", type=int, default=5)
    ap.add_argument("--video-steps", type=int, default=400, help="gif: env steps shown")
    ap.add_argument("--out", default=str(ROOT / "docs/reports/headline_safe_ant_8x1"))
    args = ap.parse_args()
    bad = [x for x in args.labels.split(",") if x not in VARIANTS]
    if bad:
        ap.error(f"--labels: unknown {', '.join(bad)}; valid: {', '.join(VARIANTS)}")
    {"train": cmd_train, "report": cmd_report, "gif": cmd_gif}[args.command](args)


if __name__ == "__main__":
    main()
