"""Learning at scale: sac, dec-mappo-l (κ = 1) and dmpo on the 400-user wireless grid, against the
uniform-random policy and a simple per-agent rule.

    .venv/bin/python benchmarks/scale_evidence.py                       # the full study (hours: see --plan)
    .venv/bin/python benchmarks/scale_evidence.py --plan                # print the runs and the budget, run nothing
    .venv/bin/python benchmarks/scale_evidence.py --steps 2400 --seeds 0 --episodes 16   # a short check

Every run lives in ``docs/reports/runs/scaling/<env>/<label>-s<seed>`` and is **resumable**: a run
that exists is continued from its last checkpoint (``safenet train --resume``) until it has
``--steps`` env steps, a finished run is only evaluated. Runs go one at a time (``--parallel`` to
change), so the study can be stopped and restarted across sessions.

The per-agent rule (stated in the report): every user sends its earliest packet with probability
``p`` to an access point chosen by the reference's success weights (the grid env's
``earliest_packet_actions``); ``p`` is the best of a grid of 11 values whose worst user keeps
its energy limit, measured on the same evaluation episodes.

Evaluation: the final policy, sampled, ``--episodes`` episodes: mean reward per user per episode,
the discounted reward per user (γ = 0.7, the env's suggestion), the share of users whose mean
energy per episode is over the limit, and floats communicated per agent per update (from the run).
Writes ``docs/reports/scaling_evidence.json`` and prints a markdown table.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GAMMA = 0.7
#: label → (algorithm, overrides)
VARIANTS = {
    "sac": ("sac", []),
    "dec-mappo-l-k1": ("dec-mappo-l", ["algo.kappa=1"]),
    "dec-mappo-l-k1-shared": ("dec-mappo-l", ["algo.kappa=1", "algo.share_parameters=true"]),
    "dmpo": ("dmpo", []),
    "dmpo-shared": ("dmpo", ["algo.share_parameters=true"]),
}
#: CPU-seconds per 1,000 env steps at n = 400 (1 torch thread, measured on the loaded 2-core machine of
#: docs/reports/scaling.md; a quiet machine is faster): used only by --plan
COST_PER_KSTEP = {"sac": 1.0, "dec-mappo-l": 25.0, "dmpo": 125.0}


def run_dir(runs: Path, label: str, seed: int) -> Path:
    return runs / f"{label}-s{seed}"


def steps_done(path: Path) -> int:
    metrics = path / "metrics.csv"
    if not metrics.exists():
        return 0
    rows = list(csv.DictReader(open(metrics)))
    return int(float(rows[-1]["env_steps"])) if rows else 0


def train(runs: Path, env: str, label: str, seed: int, steps: int, threads: int) -> Path:
    algo, overrides = VARIANTS[label]
    path = run_dir(runs, label, seed)
    common = [f"trainer.total_steps={steps}", f"trainer.torch_threads={threads}", "run.progress=none",
              "run.tensorboard=false", "trainer.eval_every_steps=-1", "trainer.checkpoint_interval_s=300"]
    if path.exists() and any(path.glob("checkpoints/*")):
        if steps_done(path) >= steps:
            return path
        cmd = [sys.executable, "-m", "safenet.cli", "train", "--resume", str(path), *common]
    else:
        cmd = [sys.executable, "-m", "safenet.cli", "train", "--algo", algo, "--env", env, f"seed={seed}",
               f"run.dir={runs}", f"run.name={path.name}", *overrides, *common]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return path


def episodes_of(game, policy, episodes: int, seed: int) -> dict[str, float]:
    """Roll ``policy(obs, info) -> actions`` for whole episodes on all copies of ``game``."""
    spec = game.spec
    limit = np.asarray([lim[0] for lim in spec.cost_limits])
    rets, discs, costs = [], [], []
    done_eps = 0
    while done_eps < episodes:
        obs, info = game.reset(seed=seed + done_eps)
        B = obs.shape[0]
        ret, disc, cost = np.zeros((B, spec.n)), np.zeros((B, spec.n)), np.zeros((B, spec.n))
        for t in range(spec.episode_length):
            obs, r, c, _, _, info = game.step(policy(obs, info))
            ret += r
            disc += GAMMA ** t * r
            cost += c[..., 0]
        rets.append(ret)
        discs.append(disc)
        costs.append(cost)
        done_eps += B
    cost = np.concatenate(costs)[:episodes]
    per_agent = cost.mean(0)
    return {"reward": float(np.concatenate(rets)[:episodes].mean()), "disc": float(np.concatenate(discs)[:episodes].mean()),
            "energy": float(per_agent.mean()), "over_limit": float((per_agent > limit + 1e-9).mean()),
            "limit": float(limit.mean())}


def baselines(env: str, episodes: int, seed: int) -> dict[str, dict]:
    from safenet.trainer import Selection, make_game

    sel = Selection.resolve("sac", env)
    game = make_game(sel, sel.compose(overrides=[]), min(episodes, 16), seed)
    dims = np.asarray(game.spec.action_dims)
    rng = np.random.default_rng([seed, 1])
    out = {"uniform random": episodes_of(game, lambda o, i: (rng.random((o.shape[0], len(dims))) * dims).astype(np.int64),
                                         episodes, seed)}
    best = None
    for p in np.linspace(0.0, 1.0, 11):
        rule = lambda o, i, p=p: game.earliest_packet_actions(i["local_state"], rng, send_prob=p, ap_choice="weighted")  # noqa: E731
        res = episodes_of(game, rule, episodes, seed)
        if res["over_limit"] == 0.0 and (best is None or res["disc"] > best["disc"]):
            best = {**res, "send_prob": float(p)}
    if best is not None:
        out[f"earliest packet, p = {best['send_prob']:.1f}"] = best
    return out


def evaluate_run(path: Path, episodes: int, seed: int) -> dict[str, float]:
    from safenet.trainer import load_trained

    tr = load_trained(path, min(episodes, 16), seed)
    res = episodes_of(tr.game, lambda o, i: tr.algo.act(o, i, deterministic=False)[0], episodes, seed)
    rows = list(csv.DictReader(open(path / "metrics.csv")))
    comm = [float(r["comm/floats_per_update"]) for r in rows if r.get("comm/floats_per_update")]
    n = tr.game.spec.n
    res["floats_per_agent_update"] = float(np.mean(comm)) / n if comm else 0.0
    res["env_steps"] = steps_done(path)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", default="grid_wireless_20x20")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=300_000)
    ap.add_argument("--episodes", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", default=str(ROOT / "docs" / "reports" / "runs" / "scaling"))
    ap.add_argument("--json", default=str(ROOT / "docs" / "reports" / "scaling_evidence.json"))
    ap.add_argument("--plan", action="store_true", help="print the runs and their estimated budget, run nothing")
    args = ap.parse_args()
    labels = args.variants.split(",")
    unknown = [v for v in labels if v not in VARIANTS]
    if unknown:
        sys.exit(f"--variants: unknown {unknown}; valid: {', '.join(VARIANTS)}")
    runs = Path(args.runs) / args.env
    if args.plan:
        total = 0.0
        for label in labels:
            algo = VARIANTS[label][0]
            for seed in args.seeds:
                left = max(0, args.steps - steps_done(run_dir(runs, label, seed)))
                est = COST_PER_KSTEP[algo] * left / 1000
                total += est
                print(f"{label:<24} seed {seed}: {left:>9,} steps left, ~{est / 3600:.1f} CPU-h")
        print(f"total ~{total / 3600:.1f} CPU-hours (loaded-machine rates; see COST_PER_KSTEP)")
        return
    results: dict[str, dict] = {"baselines": baselines(args.env, args.episodes, 10_000), "runs": {}}
    for label in labels:
        for seed in args.seeds:
            t0 = time.time()
            path = train(runs, args.env, label, seed, args.steps, args.threads)
            results["runs"][f"{label}-s{seed}"] = {**evaluate_run(path, args.episodes, 10_000),
                                                   "wall_s_this_session": time.time() - t0}
            Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"| policy | env steps | reward/user/episode | discounted | energy/user | users over limit | floats/agent/update |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in {**results["baselines"], **results["runs"]}.items():
        print(f"| {name} | {r.get('env_steps', '')} | {r['reward']:.3f} | {r['disc']:.3f} | {r['energy']:.2f} "
              f"(limit {r['limit']:g}) | {100 * r['over_limit']:.1f} % | {r.get('floats_per_agent_update', 0):,.0f} |")


if __name__ == "__main__":
    main()
