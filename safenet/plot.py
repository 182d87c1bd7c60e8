"""Learning curves from run directories: reward, cost and the game's episode metrics vs env steps,
seeds as mean ± std."""
from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import SafenetError
from .runs import METRICS_FILE, is_run_dir


def _read(path: Path) -> dict[str, np.ndarray]:
    from .runs import MetricsCSV, damaged_metrics

    metrics = MetricsCSV(path / METRICS_FILE)
    rows = metrics.read()
    if not rows:
        return {}
    cols = {}
    for k in rows[0]:
        vals = [r.get(k, "") for r in rows]
        try:
            cols[k] = np.array([float(v) if v not in ("", None) else np.nan for v in vals])
        except (TypeError, ValueError):
            raise damaged_metrics(metrics.path, f"column {k!r} holds a value that is not a number") from None
    return cols


def _flat_config(path: Path) -> dict[str, str]:
    from omegaconf import OmegaConf

    def walk(node, prefix=""):
        for k, v in node.items():
            if isinstance(v, dict):
                yield from walk(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", str(v)

    try:
        cfg = OmegaConf.to_container(OmegaConf.load(path / "config.yaml"))
    except Exception:
        return {}
    return dict(walk(cfg))


#: Config keys that never separate curves (seeds are what a group aggregates over).
IGNORED_KEYS = ("seed", "run.", "trainer.eval", "trainer.checkpoint", "trainer.keep_checkpoints", "trainer.torch_threads")


def group_labels(paths: Sequence[Path]) -> dict[Path, str]:
    """``"<algo> on <env>"`` plus the config values that differ between the runs (seeds excluded)."""
    metas = {p: json.loads((p / "meta.json").read_text()) for p in paths}
    cfgs = {p: _flat_config(p) for p in paths}
    keys = sorted({k for c in cfgs.values() for k in c if not k.startswith(IGNORED_KEYS)})
    # keys only some runs have belong to a different algorithm or env, which the base label already names
    varying = [k for k in keys if all(k in c for c in cfgs.values()) and len({c[k] for c in cfgs.values()}) > 1]
    labels = {}
    for p in paths:
        base = f"{metas[p].get('algo')} on {metas[p].get('env')}"
        extra = ", ".join(f"{k.split('.', 1)[-1]}={cfgs[p].get(k)}" for k in varying)
        labels[p] = f"{base} ({extra})" if extra else base
    return labels


def aggregate(xs: list[np.ndarray], ys: list[np.ndarray], points: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interpolate each seed's curve on a common grid of env steps; mean and std across seeds."""
    lo = max(x.min() for x in xs)
    hi = min(x.max() for x in xs)
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
    stack = np.stack([np.interp(grid, x, y) for x, y in zip(xs, ys)])
    return grid, stack.mean(0), stack.std(0)


def panel_names(runs: Sequence[dict[str, np.ndarray]], prefix: str) -> list[str]:
    """The panels for runs' metric columns: ``return``, each cost name, then ``env/<name>`` for each
    episode metric the game reported (``<prefix>/env/<name>`` with at least one value)."""
    cost_keys = sorted({k.split("/", 2)[2] for d in runs for k in d if re.fullmatch(rf"{prefix}/ep_cost/[^/]+", k)})
    env_keys = sorted({k.split("/", 2)[2] for d in runs for k in d
                       if re.fullmatch(rf"{prefix}/env/[^/]+", k) and np.isfinite(d[k]).any()})
    return ["return", *cost_keys, *(f"env/{k}" for k in env_keys)]


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, prefix: str = "rollout") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict[str, np.ndarray]]] = defaultdict(list)
    paths = [Path(d) for d in run_dirs]
    for p in paths:
        if not is_run_dir(p) or not (p / METRICS_FILE).exists():
            raise SafenetError(f"{p}: not a safenet run directory with {METRICS_FILE}")
    labels = group_labels(paths)
    for p in paths:
        data = _read(p)
        if data:
            groups[labels[p]].append(data)
    if not groups:
        raise SafenetError("no metrics to plot yet")
    panels = panel_names([d for g in groups.values() for d in g], prefix)
    ncols = min(len(panels), 4)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 4 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels):
        key = (f"{prefix}/ep_return" if panel == "return" else f"{prefix}/{panel}" if panel.startswith("env/")
               else f"{prefix}/ep_cost/{panel}")
        for name, runs in sorted(groups.items()):
            xs, ys = [], []
            for d in runs:
                if key in d:
                    ok = ~np.isnan(d[key])
                    if ok.sum() >= 1:
                        xs.append(d["env_steps"][ok])
                        ys.append(d[key][ok])
            if not xs:
                continue
            grid, mean, std = aggregate(xs, ys)
            label = f"{name} ({len(xs)} seed{'s' if len(xs) > 1 else ''})"
            line, = ax.plot(grid, mean, label=label)
            if len(xs) > 1:
                ax.fill_between(grid, mean - std, mean + std, alpha=0.2, color=line.get_color())
        if panel.startswith("env/"):
            ax.set_xlabel("environment steps")
            ax.set_ylabel(panel[4:])
            ax.set_title(f"environment metric: {panel[4:]}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            continue
        if panel != "return":
            limits = [np.nanmean(d[f"limit/{panel}"]) for rs in groups.values() for d in rs if f"limit/{panel}" in d]
            if limits:
                ax.axhline(float(np.mean(limits)), color="black", linestyle="--", label="cost limit")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("episode reward (mean over agents)" if panel == "return" else f"episode cost: {panel}")
        ax.set_title("reward" if panel == "return" else f"cost: {panel}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
