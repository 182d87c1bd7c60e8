"""DMPO / DPPO / CPPO on the CACC platoons: run the experiments, then write the report.

Run (each training run is a separate process with one torch thread; ``--jobs`` at a time)::

    python benchmarks/dmpo_cacc.py run --out runs/dmpo_cacc --algos dmpo dppo cppo \
        --envs cacc_catchup cacc_slowdown --seeds 0 1 2 --steps 240000 --jobs 16
    python benchmarks/dmpo_cacc.py run --out runs/dmpo_cacc --algos dmpo --envs cacc_catchup \
        --seeds 0 1 --steps 240000 --variant T1:algo.rollout_length=1 --variant T25:algo.rollout_length=25

Report (reads every run under ``--runs``, writes markdown + PNG plots)::

    python benchmarks/dmpo_cacc.py report --runs runs/dmpo_cacc --out docs/reports

Traces (headway and velocity of a few vehicles over one deterministic episode of a trained run)::

    python benchmarks/dmpo_cacc.py traces --run runs/dmpo_cacc/cacc_catchup__dmpo__s0

A run is named ``<env>__<algo>[__<variant>]__s<seed>``; extra ``key=value`` overrides after ``--set``
apply to every run (e.g. ``--set trainer.eval_episodes=16``).
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

import numpy as np


def run_one(out: Path, env: str, algo: str, seed: int, steps: int, variant: str, overrides: list[str],
            common: list[str]) -> tuple[str, int, float]:
    name = "__".join([env, algo] + ([variant] if variant else []) + [f"s{seed}"])
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
            print(f"{'ok ' if rc == 0 else 'FAIL'} {name} ({dt:.0f} s)", flush=True)
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


def steps_to_reach(runs: list[dict[str, np.ndarray]], key: str, level: float, window: int) -> np.ndarray:
    """Per seed: first env step where the moving average of ``key`` reaches ``level`` (inf if never)."""
    out = []
    for r in runs:
        x, y = smoothed(r["env_steps"], r[key], window)
        hit = np.flatnonzero(y >= level)
        out.append(x[hit[0]] if len(hit) else np.inf)
    return np.asarray(out)


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


def fmt(vals: np.ndarray, digits: int = 0) -> str:
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return "–"
    return f"{np.mean(vals):,.{digits}f} ± {np.std(vals):,.{digits}f}"


def cmd_report(args: argparse.Namespace) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = read_runs(Path(args.runs))
    if not groups:
        print(f"no runs under {args.runs}", file=sys.stderr)
        return 1
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    key_r, key_c = "rollout/ep_return", "rollout/ep_cost/unsafe_headway"
    lines = [f"<!-- written by benchmarks/dmpo_cacc.py report --runs {args.runs} -->"]
    envs = sorted({k[0] for k in groups})
    for env in envs:
        base = {k[1]: v for k, v in groups.items() if k[0] == env and not k[2]}
        if not base:
            continue
        top = max(np.nanmax(r["env_steps"]) for runs in base.values() for r in runs)
        grid = np.linspace(0, top, 200)
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for algo, runs in sorted(base.items()):
            for ax, key in zip(axes, (key_r, key_c)):
                c = curve(runs, key, grid, args.window)
                if not len(c):
                    continue
                m, s = np.nanmean(c, 0), np.nanstd(c, 0)
                ax.plot(grid, m, label=f"{algo} ({len(runs)} seeds)")
                ax.fill_between(grid, m - s, m + s, alpha=0.2)
        axes[0].set_ylabel("episode return per vehicle (raw reward)")
        axes[1].set_ylabel("unsafe-headway steps per vehicle and episode")
        for ax in axes:
            ax.set_xlabel("environment steps")
            ax.grid(alpha=0.3)
        axes[0].legend()
        fig.suptitle(f"{env}: mean ± std over seeds (moving average of {args.window} iterations)")
        fig.tight_layout()
        png = outdir / f"dmpo_{env}.png"
        fig.savefig(png, dpi=110)
        plt.close(fig)
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
            level = np.nanmean(final(base["dppo"], key_r))
            t_d = steps_to_reach(base["dmpo"], key_r, level, args.window)
            t_p = steps_to_reach(base["dppo"], key_r, level, args.window)
            ratio = np.nanmedian(t_p[np.isfinite(t_p)]) / np.nanmedian(t_d[np.isfinite(t_d)]) \
                if np.isfinite(t_d).any() and np.isfinite(t_p).any() else np.nan
            lines += ["", f"dppo's final return {level:,.0f} is first reached (moving average) at "
                      f"{', '.join(f'{x:,.0f}' for x in t_d)} env steps by dmpo and "
                      f"{', '.join(f'{x:,.0f}' for x in t_p)} by dppo: dppo needs {ratio:.2f}x the env steps "
                      f"(median over seeds).", ""]
        lines.append("")
    # sweeps
    sweeps = {k: v for k, v in groups.items() if k[2]}
    if sweeps:
        lines += ["## Sweeps", "", "| env | algorithm | variant | seeds | final return | final unsafe steps | "
                  "model state err | model reward err |", "|---|---|---|---|---|---|---|---|"]
        for (env, algo, variant), runs in sorted(sweeps.items()):
            lines.append(f"| {env} | {algo} | {variant} | {len(runs)} | {fmt(final(runs, key_r))} | "
                         f"{fmt(final(runs, key_c), 2)} | {fmt(final(runs, 'model/state_err'), 4)} | "
                         f"{fmt(final(runs, 'model/reward_err'), 3)} |")
    text = "\n".join(lines) + "\n"
    (outdir / "dmpo_cacc_tables.md").write_text(text)
    print(text)
    return 0


def cmd_traces(args: argparse.Namespace) -> int:
    """Headway and velocity of a few vehicles over one episode of a trained policy."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from safenet.trainer import load_trained

    path = Path(args.run)
    trained = load_trained(path, 1, args.seed)
    game, algo, sel, cfg, state = trained.game, trained.algo, trained.sel, trained.cfg, trained.state
    import torch
    torch.manual_seed(args.seed)
    obs, info = game.reset(seed=args.seed)
    heads, vels, rew = [info["headway"][0]], [info["velocity"][0]], []
    for _ in range(game.spec.episode_length):
        actions, _ = algo.act(obs, info, deterministic=not args.stochastic)
        obs, r, c, term, trunc, info = game.step(actions)
        done = bool(term[0] or trunc[0])
        heads.append(info["final_headway" if done else "headway"][0])
        vels.append(info["final_velocity" if done else "velocity"][0])
        rew.append(r[0])
        if done:
            break
    h, v = np.asarray(heads), np.asarray(vels)
    t = np.arange(len(h)) * float(cfg.env.dt)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for i in args.vehicles:
        axes[0].plot(t, h[:, i], label=f"vehicle {i}")
        axes[1].plot(t, v[:, i], label=f"vehicle {i}")
    axes[0].axhline(float(cfg.env.h_star), color="k", ls=":", lw=1)
    axes[1].axhline(float(cfg.env.v_star), color="k", ls=":", lw=1)
    axes[0].set_ylabel("headway (m)")
    axes[1].set_ylabel("velocity (m/s)")
    for ax in axes:
        ax.set_xlabel("time (s)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    how = "sampled" if args.stochastic else "argmax"
    fig.suptitle(f"{sel.algo.name} on {sel.env_name} ({int(state['env_steps'])} env steps, {how} actions), "
                 f"episode seed {args.seed}")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    last = slice(-100, None)
    print(f"wrote {args.out}; episode return per vehicle {np.sum(rew, axis=0).mean():,.0f}")
    print("vehicle  headway(last 10 s)  velocity(last 10 s)  max |h - h*|  min headway")
    for i in range(h.shape[1]):
        print(f"{i:7d}  {h[last, i].mean():18.2f}  {v[last, i].mean():19.2f}  "
              f"{np.abs(h[:, i] - float(cfg.env.h_star)).max():12.2f}  {h[:, i].min():11.2f}")
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
    tr.add_argument("--run", required=True, help="a run directory (its latest checkpoint is played)")
    tr.add_argument("--out", default="docs/reports/dmpo_cacc_traces.png")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--vehicles", type=int, nargs="+", default=[0, 1, 3, 7])
    tr.add_argument("--stochastic", action="store_true", help="sample the policy (default: argmax)")
    args = p.parse_args(argv)
    return {"run": cmd_run, "report": cmd_report, "traces": cmd_traces}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
