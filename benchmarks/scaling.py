"""Scaling in the number of agents: figures, not assertions.

    .venv/bin/python benchmarks/scaling.py [--family grid|cacc] [--sizes 9,25,100,400,1024]
        [--algos sac,ippo,dec-mappo-l:kappa=1,dec-mappo-l:kappa=2,dmpo,dppo,mappo-l,cppo]
        [--iterations 2] [--threads 2] [--cap-s 900] [--cap-gb 4] [--json out.json] [--markdown]

Each (size, algorithm) runs in its own subprocess, so its peak memory is its own. The child builds
the game and the algorithm as ``safenet train`` does, runs ``--iterations`` training iterations
(evaluation off) and measures, in that one process:

* **env agent-steps/s** — the bare batched game, same copies, uniform random actions, × n;
* **loop agent-steps/s** — env steps × n / (collect + update seconds) of the training iterations;
* **update s/agent/it** — update seconds per iteration divided by n;
* **floor** — the update's compute floor, timed right after the run in the same process: the same
  number of full-batch forward + backward + row-wise Adam passes over stacked networks of the same
  shapes and activations (:class:`safenet.stacked.StackedMLP`), nothing else (no stages, minibatches, gathers or
  bookkeeping); ``loop/floor`` = floor seconds / loop seconds (1.0: the loop costs what the networks
  cost, collection included);
* **peak GB** — the child's peak resident memory during training (the floor is measured after, with
  its full-batch gradients accumulated over chunks of samples);
* **floats/agent/update** — ``algo.communication()['floats_per_update'] / n`` of the last iteration.

A config that passes ``--cap-s`` seconds or ``--cap-gb`` of resident memory is stopped and printed
as "did not fit". Dmpo fits its models from the first iteration (``algo.warmup_steps=0``) so the
model path is measured (a regular 100-step refit, not the
longer warm-up fit). On a shared machine read speeds as the ratios within one row.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZES = (9, 25, 100, 400, 1024)
ALGOS = ("sac", "ippo", "dec-mappo-l:kappa=1", "dec-mappo-l:kappa=2", "dmpo", "dppo", "mappo-l", "cppo")
#: per-algorithm settings of this benchmark (documented in the module docstring)
EXTRA = {"dmpo": ["algo.warmup_steps=0", "algo.warmup_model_steps=0"]}


def env_name(family: str, n: int) -> str:
    if family == "grid":
        r = int(round(math.sqrt(n)))
        if r * r != n:
            raise SystemExit(f"--sizes: grid sizes must be squares (R x R agents), got {n}")
        return f"grid_wireless_{r}x{r}"
    if family == "cacc":
        return f"cacc_catchup_{n}"
    raise SystemExit(f"--family must be 'grid' or 'cacc', got {family!r}")


def parse_algo(text: str) -> tuple[str, list[str]]:
    """``name[:key=value,...]`` → (name, ``algo.key=value`` overrides)."""
    name, _, rest = text.partition(":")
    return name, [f"algo.{kv}" for kv in rest.split(",") if kv]


# ------------------------------------------------------------------------------------------------
# the child: one config
# ------------------------------------------------------------------------------------------------

def activation_of(net) -> str:
    """The activation of an :class:`safenet.nets.AgentMLP` (its first activation module) as a StackedMLP name."""
    for m in net.modules():
        if type(m).__name__ in ("Tanh", "ReLU", "SiLU"):
            return type(m).__name__.lower()
    raise ValueError(f"no known activation in {type(net).__name__}")


def floor_networks(algo, samples: int) -> list[tuple[int, int, tuple[int, ...], int, int, int, str]]:
    """``(members, in, hidden, out, samples, passes, activation)`` of every network the update trains, and how
    many full-batch passes one iteration makes over it."""
    nets = []
    cfg = algo.cfg
    name = type(algo).__name__
    if hasattr(algo, "policy_opt"):                                   # the PPO family (safenet.stacked)
        for net in (algo.policy.net, algo.critic, algo.cost_critic):
            if net is not None:
                nets.append((net.members, net.in_features, tuple(cfg.hidden), net.out_features, samples, cfg.epochs,
                             net.activation))
    elif hasattr(algo, "pi_opt"):                                     # dppo / cppo / dmpo
        inner = cfg.inner_updates if name == "DMPO" else 1
        for net in (algo.policy.net, algo.critic):
            lin = [m for m in net.modules() if hasattr(m, "in_features") and hasattr(m, "weight")]
            members = 1 if getattr(lin[0], "shared", False) else algo.n
            nets.append((members, lin[0].in_features, tuple(cfg.hidden), lin[-1].out_features, samples,
                         cfg.epochs * inner, activation_of(net)))
        if name == "DMPO":
            lin = [m for m in algo.model.net.modules() if hasattr(m, "in_features") and hasattr(m, "weight")]
            members = 1 if getattr(lin[0], "shared", False) else algo.n
            fits = algo.model_fits
            nets.append((members, lin[0].in_features, tuple(cfg.model_hidden), lin[-1].out_features, cfg.model_batch,
                         max(1, round(fits * cfg.model_steps / max(1, algo.iteration))), activation_of(algo.model.net)))
    return nets


def floor_seconds(nets, repeats: int = 1) -> float:
    """Seconds of the full-batch passes over stacked networks of these shapes (one iteration's worth)."""
    import torch

    from safenet.stacked import StackedAdam, StackedMLP

    total = 0.0
    for members, fin, hidden, fout, samples, passes, activation in nets:
        net = StackedMLP(members, fin, hidden, fout, activation=activation)
        opt = StackedAdam(net.flat, 1e-4, max_grad_norm=10.0)
        x = torch.randn(members, samples, fin)
        # the full batch's gradient, accumulated over chunks of samples of at most 2^24 floats per
        # activation (the same FLOPs; memory stays linear in n, as in the algorithms' own passes)
        per = max(1, 2 ** 24 // (members * max(fin, *hidden)))
        t0 = time.perf_counter()
        for _ in range(passes * repeats):
            for a in range(0, samples, per):
                (net(x[:, a:a + per]).square().sum(1) / samples).sum().backward()
            opt.step()
        total += (time.perf_counter() - t0) / repeats
    return total


def run_one(env: str, algo: str, overrides: list[str], iterations: int, threads: int) -> dict:
    import torch

    from common import raw_rate
    from safenet.trainer import Selection, start_run

    sel = Selection.resolve(algo, env)
    cfg = sel.compose(overrides=[f"run.dir=/tmp/safenet-scaling-{os.getpid()}", "run.progress=none",
                                 "run.tensorboard=false", "trainer.eval_every_steps=-1", "trainer.checkpoint_interval_s=1e9",
                                 f"trainer.torch_threads={threads}", "trainer.total_steps=1", *overrides])
    t_build = time.perf_counter()
    trainer = start_run(sel, cfg)
    build_s = time.perf_counter() - t_build
    n = trainer.spec.n
    B = int(cfg.trainer.n_envs)
    per_it = trainer.rollout_steps * B
    trainer.cfg.trainer.total_steps = per_it * iterations
    env_rate = raw_rate(sel, cfg, B, seconds=1.0) * n
    collect = update = 0.0
    for _ in range(iterations):
        t0 = time.perf_counter()
        rollout, _ = trainer.collector.collect(trainer.algo, trainer.rollout_steps)
        t1 = time.perf_counter()
        trainer.algo.update(rollout)
        if hasattr(trainer.algo, "wait"):
            trainer.algo.wait()                  # an overlapped critic update counts as update time
        t2 = time.perf_counter()
        collect += t1 - t0
        update += t2 - t1
    comm = trainer.algo.communication()
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20      # the run's, before the floor
    print(f"trained: collect {collect:.1f} s, update {update:.1f} s, peak {peak_gb:.2f} GB", file=sys.stderr, flush=True)
    nets = floor_networks(trainer.algo, per_it)
    floor = floor_seconds(nets) * iterations if nets else float("nan")
    loop = collect + update
    trainer.run.close()
    return {"env": env, "algo": algo, "overrides": overrides, "n": n, "copies": B, "env_steps": per_it * iterations,
            "iterations": iterations, "threads": threads, "build_s": build_s,
            "env_agent_steps_s": env_rate, "loop_agent_steps_s": per_it * iterations * n / loop,
            "collect_s": collect, "update_s": update,
            "update_s_per_agent_it": update / iterations / n, "floor_s": floor,
            "loop_over_floor": floor / loop if nets else float("nan"),
            "floor_agent_steps_s": per_it * iterations * n / floor if nets else float("nan"),
            "floats_per_agent_update": comm.get("floats_per_update", 0.0) / n,
            "peak_gb": peak_gb,
            "torch_threads": torch.get_num_threads()}


# ------------------------------------------------------------------------------------------------
# the parent: every config in a subprocess, with caps
# ------------------------------------------------------------------------------------------------

def rss_gb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def run_capped(args: list[str], cap_s: float, cap_gb: float) -> tuple[dict | None, str]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=Path(__file__).parent)
    t0, peak = time.monotonic(), 0.0
    while proc.poll() is None:
        peak = max(peak, rss_gb(proc.pid))
        if time.monotonic() - t0 > cap_s or peak > cap_gb:
            proc.kill()
            _, err = proc.communicate()
            why = f"over {cap_s:.0f} s" if time.monotonic() - t0 > cap_s else f"over {cap_gb:g} GB"
            trained = [line for line in err.splitlines() if line.startswith("trained:")]
            return None, why + (f", in the floor measurement ({trained[0]})" if trained else "")
        time.sleep(0.2)
    out, err = proc.communicate()
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line), ""
    return None, "failed: " + (err.strip().splitlines() or ["?"])[-1][:120]


def row_text(r: dict) -> str:
    return (f"{r['n']:>6} {r['label']:<22} {r['env_agent_steps_s']:>12,.0f} {r['loop_agent_steps_s']:>12,.0f} "
            f"{r['update_s_per_agent_it'] * 1e3:>10.2f} {r['loop_over_floor']:>6.2f} {r['peak_gb']:>6.2f} "
            f"{r['floats_per_agent_update']:>12,.0f}")


HEADER = (f"{'n':>6} {'algorithm':<22} {'env a-st/s':>12} {'loop a-st/s':>12} {'upd ms/ag':>10} "
          f"{'/floor':>6} {'GB':>6} {'floats/ag/up':>12}")


def markdown(rows: list[dict]) -> str:
    out = ["| n | algorithm | env agent-steps/s | loop agent-steps/s | update ms/agent/it | loop/floor | peak GB | "
           "floats/agent/update |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("missing"):
            out.append(f"| {r['n']} | {r['label']} | did not fit ({r['missing']}) | | | | | |")
            continue
        out.append(f"| {r['n']:,} | {r['label']} | {r['env_agent_steps_s']:,.0f} | {r['loop_agent_steps_s']:,.0f} | "
                   f"{r['update_s_per_agent_it'] * 1e3:.2f} | {r['loop_over_floor']:.2f} | {r['peak_gb']:.2f} | "
                   f"{r['floats_per_agent_update']:,.0f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="grid")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--algos", default=",".join(ALGOS))
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cap-s", type=float, default=900.0)
    ap.add_argument("--cap-gb", type=float, default=4.0)
    ap.add_argument("--set", action="append", default=[], help="extra override for every config (repeatable)")
    ap.add_argument("--json", default="")
    ap.add_argument("--plot", default="", help="write a log-log plot (PNG) of these rows, and of --from-json files")
    ap.add_argument("--from-json", nargs="*", default=[], help="only plot/print rows saved by earlier --json runs")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--one", nargs=2, metavar=("ENV", "ALGO"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        env, algo = args.one
        name, over = parse_algo(algo)
        print(json.dumps(run_one(env, name, over + EXTRA.get(name, []) + args.set, args.iterations, args.threads)))
        return
    if args.from_json:
        rows = [r for f in args.from_json for r in json.loads(Path(f).read_text())]
        print(markdown(rows))
        if args.plot:
            plot(rows, args.plot)
        return
    algos = _split_algos(args.algos)
    rows: list[dict] = []
    print(HEADER, flush=True)
    for n in (int(s) for s in args.sizes.split(",")):
        env = env_name(args.family, n)
        for a in algos:
            extra = [f"--iterations={args.iterations}", f"--threads={args.threads}", *(f"--set={s}" for s in args.set)]
            res, why = run_capped(["--one", env, a, *extra], args.cap_s, args.cap_gb)
            label = a.replace(":kappa=", " κ=")
            if res is None:
                rows.append({"n": n, "label": label, "env": env, "missing": why})
                print(f"{n:>6} {label:<22} did not fit ({why})", flush=True)
                continue
            res["label"] = label
            rows.append(res)
            print(row_text(res), flush=True)
    if args.markdown:
        print()
        print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.plot:
        plot(rows, args.plot)


def plot(rows: list[dict], path: str) -> None:
    """Log-log: loop agent-steps/s and update seconds per agent per iteration against n, one line per algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for label in dict.fromkeys(r["label"] for r in rows):
        got = sorted((r for r in rows if r["label"] == label and not r.get("missing")), key=lambda r: r["n"])
        if not got:
            continue
        n = [r["n"] for r in got]
        axes[0].plot(n, [r["loop_agent_steps_s"] for r in got], "o-", label=label)
        axes[1].plot(n, [r["update_s_per_agent_it"] * 1e3 for r in got], "o-", label=label)
        axes[2].plot(n, [max(r["floats_per_agent_update"], 1.0) for r in got], "o-", label=label)
    titles = ("training loop, agent-steps/s", "update, ms per agent per iteration", "floats per agent per update")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("agents n")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _split_algos(text: str) -> list[str]:
    """Comma-separated algorithms, where ``name:k=v,k2=v2`` keeps its own commas (a token with '=' and no ':'
    continues the previous algorithm's settings)."""
    out: list[str] = []
    for tok in text.split(","):
        if out and "=" in tok and ":" not in tok:
            out[-1] += "," + tok
        else:
            out.append(tok)
    return out


if __name__ == "__main__":
    main()
