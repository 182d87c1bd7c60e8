"""Lemma 4 check: error of the κ-truncated policy gradient against the exact one, by κ.

For each model, discount γ and random tabular softmax policy θ ~ N(0, σ²), the exact gradient
∇J(θ) (Eq. 4) and the truncated gradient ĥ(θ) (Eq. 5-7) are computed by :mod:`safenet.exact`;
the table reports the mean over seeds of ‖ĥ − ∇J‖ (all agents stacked), of ‖ĥ − ∇J‖ / ‖∇J‖, and
of the Lemma 3 + Lemma 4 bound.

    python benchmarks/lemma4_truncation.py                 # grids 2x3, 2x4 (deadline 1), line of 8
    python benchmarks/lemma4_truncation.py --deadline2     # also the 2x3 grid with deadline 2 (slow)
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from safenet import exact as E
from safenet.graph import Graph

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "reports" / "lemma4_truncation.md"
PLOT = ROOT / "docs" / "reports" / "lemma4_truncation.png"


@dataclass
class Case:
    name: str
    build: Callable[[], E.FiniteModel]
    max_pairs: int = E.MAX_PAIRS
    seeds: int | None = None  # overrides --seeds (slow cases)
    note: str = ""


@dataclass
class Result:
    case: str
    gamma: float
    n_agents: int
    diameter: int
    pairs: int
    radius: int
    seconds: float
    rows: dict[int, dict[str, float]] = field(default_factory=dict)
    seeds: int = 0


def grid(rows: int, cols: int, deadline: int) -> Callable[[], E.FiniteModel]:
    def build() -> E.FiniteModel:
        from safenet_grid.wireless import WirelessGrid
        return WirelessGrid(rows, cols, users_per_cell=1, deadline=deadline).finite_model()
    return build


def cases(args: argparse.Namespace) -> list[Case]:
    out = [
        Case("grid 2x3, d=1", grid(2, 3, 1)),
        Case("grid 2x4, d=1", grid(2, 4, 1), max_pairs=400_000),
        Case("line of 8 (random model)",
             lambda: E.random_model(Graph.line(8), n_states=2, n_actions=2, seed=0)),
    ]
    if args.deadline2:
        out.append(Case("grid 2x3, d=2", grid(2, 3, 2), max_pairs=10_000_000, seeds=args.deadline2_seeds))
    return out


def run_case(case: Case, gamma: float, seeds: int, sigma: float) -> Result:
    model = case.build()
    start = time.perf_counter()
    per_kappa: dict[int, list[list[float]]] = {}
    radius = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        theta = [sigma * rng.normal(size=(s, a))
                 for s, a in zip(model.n_local_states, model.n_local_actions)]
        sol = E.solve(model, theta, gamma, max_pairs=case.max_pairs)
        radius = E.reward_radius(sol)
        vis = E.gradient_error_by_kappa(model, theta, gamma, solution=sol)
        ref = E.gradient_error_by_kappa(model, theta, gamma, weights="reference", solution=sol)
        for k in vis:
            per_kappa.setdefault(k, []).append(
                [vis[k].error, vis[k].relative_error, ref[k].error, ref[k].relative_error, vis[k].bound])
        del sol
    keys = ("error", "relative", "ref_error", "ref_relative", "bound")
    rows = {k: dict(zip(keys, np.mean(v, axis=0))) for k, v in per_kappa.items()}
    pairs = int(np.prod(model.n_local_states)) * int(np.prod(model.n_local_actions))
    return Result(case.name, gamma, model.graph.n, model.graph.diameter, pairs, radius,
                  time.perf_counter() - start, rows, seeds)


def table(results: list[Result]) -> str:
    head = ("| model | γ | κ | mean ‖ĥ−∇J‖ | relative error | mean ‖ĥ−∇J‖ (reference w) "
            "| relative (reference w) | Lemma 4 bound |")
    lines = [head, "|" + "---|" * 8]
    for r in results:
        for k, row in r.rows.items():
            lines.append(f"| {r.case} | {r.gamma} | {k} | {row['error']:.2e} | {row['relative']:.2e} "
                         f"| {row['ref_error']:.2e} | {row['ref_relative']:.2e} | {row['bound']:.2e} |")
    return "\n".join(lines)


def setup_table(results: list[Result]) -> str:
    lines = ["| model | agents | diameter | joint (s, a) pairs | reward radius r | seeds | γ | seconds |",
             "|" + "---|" * 8]
    for r in results:
        lines.append(f"| {r.case} | {r.n_agents} | {r.diameter} | {r.pairs:,} | {r.radius} | {r.seeds} "
                     f"| {r.gamma} | {r.seconds:.1f} |")
    return "\n".join(lines)


def plot(results: list[Result], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        ks = list(r.rows)
        errs = [max(r.rows[k]["relative"], 1e-16) for k in ks]
        ax.semilogy(ks, errs, marker="o", ls="-" if r.gamma == 0.7 else "--", label=f"{r.case}, γ={r.gamma}")
    ax.set_xlabel("truncation radius κ")
    ax.set_ylabel("relative error ‖ĥ − ∇J‖ / ‖∇J‖ (floored at 1e-16)")
    ax.set_title("Truncated policy gradient vs exact (visitation weights)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(results: list[Result], args: argparse.Namespace, command: str, peak_mb: float) -> str:
    def rel(case: str, gamma: float, k: int) -> str:
        for r in results:
            if r.case == case and r.gamma == gamma and k in r.rows:
                return f"{r.rows[k]['relative']:.1e}"
        return "n/a"

    def per_hop(case: str, gamma: float) -> str:
        for r in results:
            if r.case == case and r.gamma == gamma and r.diameter > 1:
                first, last = r.rows[0]["relative"], r.rows[r.diameter - 1]["relative"]
                return f"{(first / last) ** (1 / (r.diameter - 1)):.1f}"
        return "n/a"

    line = "line of 8 (random model)"
    d2 = [r for r in results if r.case == "grid 2x3, d=2"]
    d2_text = (f" With deadline 2 packets can wait, states carry memory, and the 2x3 grid shows a "
               f"genuine decay: relative error {rel('grid 2x3, d=2', 0.7, 0)} at κ = 0, "
               f"{rel('grid 2x3, d=2', 0.7, 1)} at κ = 1 and zero at κ = 2 (γ = 0.7, one seed)."
               if d2 else " The 2x3 grid with deadline 2 (8.3 million joint pairs) is not part of this "
               "run; add `--deadline2` (several minutes per discount).")
    gaps = [(row["ref_error"], row["error"]) for r in results for row in r.rows.values()
            if max(row["ref_error"], row["error"]) > 1e-10]
    better = sum(ref > vis for ref, vis in gaps)
    weights_text = (f"Conditioning on the visitation distribution (what a TD critic learns) gave a "
                    f"smaller error than a fixed all-zero reference point in {better} of the {len(gaps)} "
                    f"rows where the error is not zero.")
    sentences = [
        f"On the line of 8 agents with non-additive coupling the relative error falls steadily with "
        f"κ, on average by a factor of {per_hop(line, 0.7)} per extra hop at γ = 0.7 and "
        f"{per_hop(line, 0.9)} at γ = 0.9, and is zero once κ reaches the diameter: the geometric "
        f"shape of Lemma 4, at a rate much faster than the worst-case ρ = γ.",
        f"The wireless grid with deadline 1 is a degenerate case: a user's next state is a fresh "
        f"arrival whatever anyone does, so Q_i depends only on users sharing an access point, κ = 1 "
        f"is already exact on both grids, and κ = 0 misses by more than the gradient's own size "
        f"(relative error {rel('grid 2x3, d=1', 0.7, 0)} on the 2x3 grid).{d2_text}",
        "The Lemma 4 bound holds in every row but is loose by several orders of magnitude, because "
        "it charges the full reward range at every hop and ignores mixing.",
        weights_text,
    ]
    reading = textwrap.fill(" ".join(sentences), 100)
    return f"""# Lemma 4 check: truncated vs exact policy gradient

Exact check of the truncated policy gradient (Scalable Actor Critic, Lemma 4, Eq. 5-7) on models
small enough to enumerate, with `safenet.exact`. For every model, discount γ and seed, a tabular
softmax policy θ ~ N(0, {args.sigma}²) is drawn, the exact gradient ∇J(θ) (Eq. 4) is computed from
exact Q-functions, and ĥ(θ) is computed with the truncated Q̂_j of Eq. 5 under two choices of
weights: *visitation* (the conditional law of the agents outside N_j^κ given those inside under
π^θ × ζ^θ — what TD learning on κ-hop inputs estimates) and *reference* (a point mass at all-zero
states and actions). Errors are norms over all agents' gradients stacked, averaged over seeds.
The bound is Lemma 4 with Lemma 3's constants, c = r̄/(1−γ) and ρ = γ, where r̄ is the signal's
range and L_i the largest score norm of agent i; agents' bounds are stacked like the errors. When a
user's reward depends on its neighbours (r = 1 in the setup table: the grid's collisions), the
decay starts one hop earlier, so the bound uses ρ^(κ+1−r).

## Reproduce

```
{command}
```

Wall time {sum(r.seconds for r in results):.0f} s in all, peak memory {peak_mb:.0f} MB, on a
{os.cpu_count()}-core CPU machine shared with other jobs (timings are indicative). Without `--deadline2` the run takes
about a minute and stays under 1 GB.

## Setup

{setup_table(results)}

## Results

{table(results)}

![relative error vs κ](lemma4_truncation.png)

## Reading

{reading}
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--gammas", type=float, nargs="+", default=[0.7, 0.9])
    p.add_argument("--deadline2", action="store_true", help="add the 2x3 grid with deadline 2 (minutes)")
    p.add_argument("--deadline2-seeds", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="print only; do not write the report")
    args = p.parse_args(argv)
    results = []
    for case in cases(args):
        for gamma in args.gammas:
            try:
                r = run_case(case, gamma, case.seeds or args.seeds, args.sigma)
            except ImportError as exc:
                print(f"skipping {case.name}: {exc}", file=sys.stderr)
                break
            results.append(r)
            print(f"{r.case}, γ={gamma}: {r.seconds:.1f} s", file=sys.stderr, flush=True)
    print(setup_table(results))
    print()
    print(table(results))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not args.no_write:
        given = argv if argv is not None else sys.argv[1:]
        command = " ".join(["python benchmarks/lemma4_truncation.py", *given])
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(report(results, args, command.strip(), peak_mb))
        plot(results, PLOT)
        print(f"\nwrote {REPORT.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
