"""DMPO / DPPO / CPPO on the CACC platoons: run the experiments, then write the report.

Run (each training run is a separate process with one torch thread; ``--jobs`` at a time)::

    python benchmarks/dmpo_cacc.py run --out runs/dmpo_cacc --algos dmpo dppo cppo \
        --envs cacc_catchup cacc_slowdown --seeds 0 1 2 --steps 240000 --jobs 16
    python benchmarks/dmpo_cacc.py run --out runs/dmpo_cacc --algos dmpo --envs cacc_catchup \
        --seeds 0 1 --steps 240000 --variant T1:algo.rollout_length=1 --variant T25:algo.rollout_length=25

Report (reads every run under ``--runs``, writes markdown + PNG plots)::

    python benchmarks/dmpo_cacc.py report --runs runs/dmpo_cacc --out docs/reports

Traces (headway and velocity of a few vehicles over one deterministic episode of each trained run)::

    python benchmarks/dmpo_cacc.py traces --run runs/dmpo_cacc/cacc_catchup__dmpo__s{0,1,2}

A run is named ``<env>__<algo>[__<variant>]__s<seed>``. Finished runs found under ``--out`` are
reused and interrupted ones resume from their last checkpoint, so a second call only fills the
gaps. Extra ``key=value`` overrides after ``--set`` apply to every run (e.g. ``--set
trainer.eval_episodes=16``).
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import warnings

import numpy as np



def last_env_steps(run: Path) -> float:
    """The env steps of a run directory's last logged iteration (0 if none)."""
    path = run / "metrics.csv"
    if not path.exists():
        return 0.0
    rows = list(csv.DictReader(open(path)))
    return float(rows[-1]["env_steps"]) if rows else 0.0


def run_one(out: Path, env: str, algo: str, seed: int, steps: int, variant: str, overrides: list[str],
            common: list[str]) -> tuple[str, int, float]:
    name = "__".join([env, algo] + ([variant] if variant else []) + [f"s{seed}"])
    run = out / name
    if last_env_steps(run) >= steps:
        return name, 0, 0.0                                   # finished earlier: reuse
    if (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir()):
        cmd = [sys.executable, "-m", "safenet.cli", "train", "--resume", str(run), f"trainer.total_steps={steps}"]
    else:
        cmd = [sys.executable, "-m", "safenet.cli", "train", "--algo", algo, "--env", env, f"seed={seed}",
               f"trainer.total_steps={steps}", f"run.dir={out}", f"run.name={name}", "run.progress=none",
               "run.tensorboard=false", "trainer.torch_threads=1", *common, *overrides]
    t0 = time.time()
    log = out / f"{name}.log"
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT,
                             env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return name, rc, time.time() - t0


def cmd_run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = [("", [])] + [(v.split(":", 1)[0], v.split(":", 1)[1].split()) for v in args.variant]
    if args.variant and not args.baseline:
        variants = variants[1:]
    jobs = [(env, algo, seed, name, ov) for env in args.envs for algo in args.algos for (name, ov) in variants
            for seed in args.seeds]
    print(f"{len(jobs)} runs, {args.jobs} at a time, {args.steps} env steps each", flush=True)
    failed = 0
    with ThreadPoolExecutor(args.jobs) as pool:
        futs = [pool.submit(run_one, out, env, algo, seed, args.steps, name, ov, args.set)
                for env, algo, seed, name, ov in jobs]
        for f in futs:
            name, rc, dt = f.result()
            failed += rc != 0
            status = "FAIL" if rc else "ok "
            print(f"{status} {name} ({f'{dt:.0f} s' if dt else 'finished earlier: reused'})", flush=True)
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------------
def read_runs(root: Path) -> dict[tuple[str, str, str], list[dict[str, np.ndarray]]]:
    """``{(env, algo, variant): [per-seed columns]}`` from every ``*/metrics.csv`` under ``root``."""
    groups: dict[tuple[str, str, str], list[dict[str, np.ndarray]]] = defaultdict(list)
    for path in sorted(root.glob("*/metrics.csv")):
        parts = path.parent.name.split("__")
        env, algo, variant = parts[0], parts[1], (parts[2] if len(parts) == 4 else "")
        rows = list(csv.DictReader(open(path)))
        cols: dict[str, np.ndarray] = {}
        for key in rows[0].keys() if rows else []:
            vals = [float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]
            cols[key] = np.asarray(vals)
        cols["_seed"] = np.asarray([int(parts[-1][1:])])
        groups[(env, algo, variant)].append(cols)
    return groups


def smoothed(x: np.ndarray, y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing moving average over the last ``window`` logged values (fewer at the start)."""
    ok = ~np.isnan(y)
    x, y = x[ok], y[ok]
    c = np.concatenate([[0.0], np.cumsum(y)])
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(0, idx - window)
    return x, (c[idx] - c[lo]) / (idx - lo)


def natural(name: str) -> tuple:
    """Sort key: ``T5`` before ``T25`` (letters, then the number)."""
    import re
    m = re.match(r"(\D*)(\d*)(.*)", name)
    return (m.group(1), int(m.group(2)) if m.group(2) else -1, m.group(3))


def seed_mean(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over seeds (axis 0), nan where no seed has a value yet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(c, 0), np.nanstd(c, 0)


def curve(runs: list[dict[str, np.ndarray]], key: str, grid: np.ndarray, window: int) -> np.ndarray:
    """``[seeds, len(grid)]``: each seed's moving average of ``key`` interpolated on ``grid``."""
    out = []
    for r in runs:
        if key not in r:
            continue
        x, y = smoothed(r["env_steps"], r[key], window)
        out.append(np.interp(grid, x, y, left=np.nan, right=np.nan) if len(x) else np.full(len(grid), np.nan))
    return np.asarray(out)


def final(runs: list[dict[str, np.ndarray]], key: str, share: float = 0.1) -> np.ndarray:
    """Per seed: mean of ``key`` over the last ``share`` of the run's logged values."""
    vals = []
    for r in runs:
        y = r.get(key)
        if y is None:
            continue
        y = y[~np.isnan(y)]
        vals.append(np.mean(y[-max(1, int(len(y) * share)):]) if len(y) else np.nan)
    return np.asarray(vals)


def first_reach(grid: np.ndarray, y: np.ndarray, level: float, hold: int = 20) -> float:
    """First grid point from which ``y`` stays at or above ``level`` for ``hold`` points (or to the end;
    inf if never). The hold keeps an early noisy blip from counting as reaching a level."""
    ok = np.nan_to_num(y, nan=-np.inf) >= level
    for i in np.flatnonzero(ok):
        if ok[i:i + hold].all():
            return float(grid[i])
    return np.inf


def efficiency(base: dict[str, list[dict[str, np.ndarray]]], key: str, grid: np.ndarray, window: int) -> list[str]:
    """Sample efficiency of dmpo against dppo on the seed-mean training curves.

    The issue's ratio: env steps dmpo needs to reach dppo's final return, over the steps dppo needs
    for it. It means little when dppo does not improve on its start, so a table of return levels
    (a quarter, half, three quarters and 90 % of the way from the common start to the best final
    return) and the steps each method needs to reach them follows it.
    """
    means = {algo: seed_mean(curve(runs, key, grid, window))[0] for algo, runs in base.items()}
    finals = {algo: float(np.nanmean(final(runs, key))) for algo, runs in base.items()}
    start = float(np.nanmean([m[np.isfinite(m)][0] for m in means.values()]))
    out = ["", f"Sample efficiency (seed-mean training curves, moving average of {window} iterations; a level "
           f"counts as reached where the curve then stays at or above it for a tenth of the budget; the common "
           f"starting return is {start:,.0f}):", ""]
    level = finals["dppo"]
    t_d, t_p = first_reach(grid, means["dmpo"], level), first_reach(grid, means["dppo"], level)
    if level <= start:
        out.append(f"- dppo's final return, {level:,.0f}, is not above the start: dppo does not improve within "
                   f"the budget, so the step ratio for reaching it says nothing.")
    else:
        out.append(f"- dppo's final return, {level:,.0f}, is reached at {t_d:,.0f} env steps by dmpo and at "
                   f"{t_p:,.0f} by dppo: **dmpo needs {t_d / t_p:.2f}x dppo's env steps**.")
    best = max(finals.values())
    algos = sorted(base)
    out += ["", "| level (share of the way from start to the best final) | return | "
            + " | ".join(f"{a}: env steps" for a in algos) + " | dmpo / dppo |",
            "|---|---|" + "---|" * len(algos) + "---|"]
    for share in (0.25, 0.5, 0.75, 0.9):
        lv = start + share * (best - start)
        steps = {a: first_reach(grid, means[a], lv) for a in algos}
        d, p = steps["dmpo"], steps["dppo"]
        if np.isfinite(d) and np.isfinite(p):
            ratio = f"{d / p:.2f}"
        elif np.isfinite(d):
            ratio = f"< {d / grid[-1]:.2f} (dppo: not within {grid[-1]:,.0f})"
        else:
            ratio = "–"
        cells = " | ".join(f"{steps[a]:,.0f}" if np.isfinite(steps[a]) else "not reached" for a in algos)
        out.append(f"| {share:.0%} | {lv:,.0f} | {cells} | {ratio} |")
    return out + [""]


def evaluations(root: Path, env: str, algo: str, run: dict[str, np.ndarray], episodes: int) -> tuple[float, float]:
    """Mean episode return of a run's last checkpoint over ``episodes`` episodes: (sampled, argmax)."""
    import json

    name = f"{env}__{algo}__s{int(run['_seed'][0])}"
    out = []
    for flag in ("--stochastic", "--deterministic"):
        res = subprocess.run([sys.executable, "-m", "safenet.cli", "eval", str(root / name), "--episodes",
                              str(episodes), "--seed", "1000", flag, "--json"], capture_output=True, text=True)
        if res.returncode:
            print(res.stderr, file=sys.stderr)
            out.append(np.nan)
            continue
        out.append(float(json.loads(res.stdout[res.stdout.index("{"):])["eval/ep_return"]))
    return out[0], out[1]


def speed(runs: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Per seed: env steps per second of collection and update time (evaluations excluded)."""
    out = []
    for r in runs:
        t = np.nansum(r.get("time/collect_s", np.nan)) + np.nansum(r.get("time/update_s", np.nan))
        out.append(np.nanmax(r["env_steps"]) / t if t > 0 else np.nan)
    return np.asarray(out)


def fmt(vals: np.ndarray, digits: int = 0) -> str:
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return "–"
    return f"{np.mean(vals):,.{digits}f} ± {np.std(vals):,.{digits}f}"


KEY_R, KEY_C = "rollout/ep_return", "rollout/ep_cost/unsafe_headway"


def draw_curves(rows: list[tuple[str, list[dict[str, np.ndarray]]]], grid: np.ndarray, window: int, png: Path,
                *, title: str, band: bool, highlight: str | None = None) -> None:
    """Return (left) and unsafe steps (right) against env steps: one seed-mean line per named group,
    with a ± std band over seeds when ``band``; the group named ``highlight`` drawn thick and black."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, runs in rows:
        for ax, key in zip(axes, (KEY_R, KEY_C)):
            c = curve(runs, key, grid, window)
            if not len(c):
                continue
            m, s = seed_mean(c)
            bold = name == highlight
            ax.plot(grid, m, label=f"{name} ({len(runs)} seeds)", color="k" if bold else None, lw=2 if bold else 1.5)
            if band:
                ax.fill_between(grid, m - s, m + s, alpha=0.2)
    axes[0].set_ylabel("episode return per vehicle (raw reward)")
    axes[1].set_ylabel("unsafe-headway steps per vehicle and episode")
    for ax in axes:
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def cmd_report(args: argparse.Namespace) -> int:
    groups = read_runs(Path(args.runs))
    if not groups:
        print(f"no runs under {args.runs}", file=sys.stderr)
        return 1
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    key_r, key_c = KEY_R, KEY_C
    lines = [f"<!-- written by benchmarks/dmpo_cacc.py report --runs {args.runs} -->"]
    envs = sorted({k[0] for k in groups})
    for env in envs:
        base = {k[1]: v for k, v in groups.items() if k[0] == env and not k[2]}
        if not base:
            continue
        top = max(np.nanmax(r["env_steps"]) for runs in base.values() for r in runs)
        grid = np.linspace(0, top, 200)
        png = outdir / f"dmpo_{env}.png"
        draw_curves(sorted(base.items()), grid, args.window, png, band=True,
                    title=f"{env}: mean ± std over seeds (moving average of {args.window} iterations)")
        lines += [f"## {env}", "", f"![{env}]({png.name})", "",
                  "| algorithm | seeds | final return / vehicle / episode (training) | final unsafe steps | "
                  "eval return, sampled | eval return, argmax | model state err | model delta err | model reward err |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for algo, runs in sorted(base.items()):
            ev = [evaluations(Path(args.runs), env, algo, r, args.eval_episodes) for r in runs] if args.eval_episodes else []
            samp = np.asarray([e[0] for e in ev]) if ev else np.asarray([])
            det = np.asarray([e[1] for e in ev]) if ev else final(runs, "eval/ep_return", 0.01)
            lines.append(f"| {algo} | {len(runs)} | {fmt(final(runs, key_r))} | {fmt(final(runs, key_c), 2)} | "
                         f"{fmt(samp)} | {fmt(det)} | {fmt(final(runs, 'model/state_err'), 4)} | "
                         f"{fmt(final(runs, 'model/delta_err'), 3)} | {fmt(final(runs, 'model/reward_err'), 3)} |")
        if "dmpo" in base and "dppo" in base:
            lines += efficiency(base, key_r, grid, args.window)
        lines.append("")
    # sweeps: each variant beside the default config over the same seeds
    sweeps = {k: v for k, v in groups.items() if k[2]}
    for env, algo in sorted({(k[0], k[1]) for k in sweeps}):
        variants = {k[2]: v for k, v in sweeps.items() if k[:2] == (env, algo)}
        seeds = {int(r["_seed"][0]) for runs in variants.values() for r in runs}
        base_runs = [r for r in groups.get((env, algo, ""), []) if int(r["_seed"][0]) in seeds]
        rows = ([("default", base_runs)] if base_runs else []) + sorted(variants.items(), key=lambda kv: natural(kv[0]))
        top = max(np.nanmax(r["env_steps"]) for _, runs in rows for r in runs)
        grid = np.linspace(0, top, 200)
        png = outdir / f"dmpo_{env}_sweeps.png"
        draw_curves(rows, grid, args.window, png, band=False, highlight="default",
                    title=f"{algo} on {env}: sweeps (seed mean, moving average of {args.window} iterations)")
        lines += [f"## Sweeps: {algo} on {env}", "", f"![sweeps]({png.name})", "",
                  "| variant | seeds | final return (training) | per seed | final unsafe steps | eval return, argmax | "
                  "model state err | model reward err | env-steps/s |", "|---|---|---|---|---|---|---|---|---|"]
        for name, runs in rows:
            per_seed = ", ".join(f"{x:,.0f}" for x in final(runs, key_r))
            lines.append(f"| {name} | {len(runs)} | {fmt(final(runs, key_r))} | {per_seed} | "
                         f"{fmt(final(runs, key_c), 2)} | {fmt(final(runs, 'eval/ep_return', 0.01))} | "
                         f"{fmt(final(runs, 'model/state_err'), 4)} | {fmt(final(runs, 'model/reward_err'), 3)} | "
                         f"{fmt(speed(runs))} |")
        lines.append("")
    text = "\n".join(lines) + "\n"
    (outdir / "dmpo_cacc_tables.md").write_text(text)
    print(text)
    return 0


def play(run: Path, seed: int, stochastic: bool) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """One episode of a trained run: headway and velocity ``[T+1, n]``, return per vehicle, and info."""
    import torch

    from safenet.trainer import load_trained

    trained = load_trained(run, 1, seed)
    game, algo, cfg, state = trained.game, trained.algo, trained.cfg, trained.state
    torch.manual_seed(seed)
    obs, info = game.reset(seed=seed)
    heads, vels, rew = [info["headway"][0]], [info["velocity"][0]], []
    for _ in range(game.spec.episode_length):
        actions, _ = algo.act(obs, info, deterministic=not stochastic)
        obs, r, c, term, trunc, info = game.step(actions)
        done = bool(term[0] or trunc[0])
        heads.append(info["final_headway" if done else "headway"][0])
        vels.append(info["final_velocity" if done else "velocity"][0])
        rew.append(r[0])
        if done:
            break
    meta = {"dt": float(cfg.env.dt), "h_star": float(cfg.env.h_star), "v_star": float(cfg.env.v_star),
            "algo": trained.sel.algo.name, "env": trained.sel.env_name, "steps": int(state["env_steps"])}
    return np.asarray(heads), np.asarray(vels), float(np.sum(rew, axis=0).mean()), meta


def cmd_traces(args: argparse.Namespace) -> int:
    """Headway and velocity of a few vehicles over one episode of each trained run (one row per run)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [Path(r) for r in args.run]
    fig, axes = plt.subplots(len(runs), 2, figsize=(11, 3.2 * len(runs)), squeeze=False)
    how = "sampled" if args.stochastic else "argmax"
    for row, run in zip(axes, runs):
        h, v, ret, meta = play(run, args.seed, args.stochastic)
        t = np.arange(len(h)) * meta["dt"]
        for i in args.vehicles:
            row[0].plot(t, h[:, i], label=f"vehicle {i}")
            row[1].plot(t, v[:, i], label=f"vehicle {i}")
        row[0].axhline(meta["h_star"], color="k", ls=":", lw=1)
        row[1].axhline(meta["v_star"], color="k", ls=":", lw=1)
        row[0].set_ylabel("headway (m)")
        row[1].set_ylabel("velocity (m/s)")
        row[0].set_title(f"{run.name}: {meta['steps']:,} env steps, return/vehicle {ret:,.0f}", fontsize=9)
        for ax in row:
            ax.grid(alpha=0.3)
        last = slice(-int(round(10 / meta["dt"])), None)
        print(f"{run.name}: episode return per vehicle {ret:,.0f}, {len(h) - 1} steps")
        print("vehicle  headway(last 10 s)  velocity(last 10 s)  max |h - h*|  min headway")
        for i in range(h.shape[1]):
            print(f"{i:7d}  {h[last, i].mean():18.2f}  {v[last, i].mean():19.2f}  "
                  f"{np.abs(h[:, i] - meta['h_star']).max():12.2f}  {h[:, i].min():11.2f}")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{meta['algo']} on {meta['env']}, {how} actions, episode seed {args.seed} "
                 f"(dotted: h* and v*)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--algos", nargs="+", default=["dmpo", "dppo", "cppo"])
    r.add_argument("--envs", nargs="+", default=["cacc_catchup", "cacc_slowdown"])
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--steps", type=int, default=240000)
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--variant", action="append", default=[], help="NAME:key=value key=value ...")
    r.add_argument("--baseline", action="store_true", help="with --variant, also run the unmodified config")
    r.add_argument("--set", nargs="*", default=[], help="overrides for every run")
    q = sub.add_parser("report")
    q.add_argument("--runs", required=True)
    q.add_argument("--out", default="docs/reports")
    q.add_argument("--window", type=int, default=10)
    q.add_argument("--eval-episodes", type=int, default=0,
                   help="also evaluate every run's last checkpoint, sampled and argmax, over this many episodes")
    tr = sub.add_parser("traces")
    tr.add_argument("--run", required=True, nargs="+", help="run directories (each one's latest checkpoint is played)")
    tr.add_argument("--out", default="docs/reports/dmpo_cacc_traces.png")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--vehicles", type=int, nargs="+", default=[0, 2, 4, 7])
    tr.add_argument("--stochastic", action="store_true", help="sample the policy (default: argmax)")
    args = p.parse_args(argv)
    return {"run": cmd_run, "report": cmd_report, "traces": cmd_traces}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
