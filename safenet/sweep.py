"""Sweeps: a grid of algorithms × environments × seeds × config values, each trial an ordinary run.

This module holds everything about a sweep that needs no Ray: expanding the grid into trials,
checking every trial's config before anything runs, the sweep folder and its record, which trials
are finished, and ``summary.csv``. :mod:`safenet.sweep_ray` runs the trials on Ray Tune.

Layout of ``<run.dir>/sweeps/<name>/``::

    sweep.json         the trials (name, algo, env, seed, grid values, overrides) and the command
    <trial>/           one ordinary run directory per trial (config.yaml, metrics.csv, checkpoints/)
    <trial>/trial.json status of the trial's last attempt: status, error, node, wall time
    summary.csv        one row per trial (written at the end of every sweep command)
    summary.png        reward and cost curves per algo/env/grid value, seeds as mean ± std
"""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import ConfigError, SafenetError
from .runs import CKPT_DIR, LATEST, METRICS_FILE, atomic_write_text, is_run_dir

SWEEP_FILE, TRIAL_FILE, SUMMARY_CSV, SUMMARY_PNG = "sweep.json", "trial.json", "summary.csv", "summary.png"


@dataclass(frozen=True)
class GridKey:
    """One ``--grid key=v1,v2,...`` axis."""

    key: str
    values: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> "GridKey":
        key, sep, vals = text.partition("=")
        values = tuple(v.strip() for v in vals.split(",")) if sep else ()
        if not key.strip() or not values or any(not v for v in values):
            raise ConfigError(f"--grid {text!r} must look like key=v1,v2,... (e.g. algo.kappa=1,2,3)")
        if key.strip() in ("seed", "run.dir", "run.name"):
            raise ConfigError(f"--grid {key.strip()!r}: set seeds with --seeds and the folder with run.dir / --name")
        return cls(key.strip(), values)


@dataclass
class Trial:
    """One run of the sweep."""

    name: str
    algo: str
    env: str
    seed: int
    grid: dict[str, str] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)    # the full key=value list the run is composed with


@dataclass
class SweepPlan:
    """A checked sweep: its folder, its trials and what every trial shares."""

    name: str
    dir: Path
    trials: list[Trial]
    preset: str | None
    config_files: list[str]
    grid_keys: list[str]
    total_steps: dict[str, int]                            # trial name → trainer.total_steps

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, "config_files": self.config_files,
                "grid_keys": self.grid_keys, "trials": [asdict(t) for t in self.trials]}


def split_names(text: str, what: str) -> list[str]:
    names = [x.strip() for x in (text or "").split(",") if x.strip()]
    if not names:
        raise SafenetError(f"--{what} needs at least one name (comma-separated, see `safenet plugins`)")
    return names


def _short(key: str, keys: Sequence[str]) -> str:
    """The last part of ``key`` when no other grid key ends the same way."""
    last = key.rsplit(".", 1)[-1]
    return last if sum(k.rsplit(".", 1)[-1] == last for k in keys) == 1 else key


def trial_name(algo: str, env: str, seed: int, grid: dict[str, str]) -> str:
    parts = [algo, env.replace(":", "_").replace("/", "_")]
    parts += [f"{_short(k, list(grid))}={v}".replace("/", "_") for k, v in grid.items()]
    return "-".join(parts + [f"s{seed}"])


def default_name(algos: Sequence[str], envs: Sequence[str], seeds: int, grid: Sequence[GridKey],
                 overrides: Sequence[str], preset: str | None, files: Sequence[str]) -> str:
    """Readable and the same for the same command (so re-running it resumes the sweep)."""
    what = json.dumps([list(algos), list(envs), seeds, [[g.key, list(g.values)] for g in grid], list(overrides),
                       preset, list(files)])
    digest = hashlib.sha1(what.encode()).hexdigest()[:8]
    return f"{'+'.join(algos)}-{'+'.join(envs)}-{digest}".replace("/", "_").replace(":", "_")


def plan_sweep(algos: Sequence[str], envs: Sequence[str], seeds: int, grid: Sequence[GridKey],
               overrides: Sequence[str] = (), *, name: str | None = None, preset: str | None = None,
               files: Sequence[str] = (), cpus_per_trial: int = 1, pm=None) -> SweepPlan:
    """Expand the grid and compose every trial's config, so a bad key, value, algorithm or environment
    fails here — before any trial starts — naming it."""
    from .config import parse_overrides
    from .trainer import Selection

    if seeds < 1:
        raise SafenetError(f"--seeds must be a positive number of seeds (0..N-1), got {seeds}")
    if cpus_per_trial < 1:
        raise SafenetError(f"--cpus-per-trial must be a positive integer, got {cpus_per_trial}")
    keys = [g.key for g in grid]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"--grid: a key appears twice: {keys}")
    parse_overrides(overrides)                       # key=value shape, before any composition
    name = name or default_name(algos, envs, seeds, grid, overrides, preset, files)
    if not name or "/" in name or name.startswith("."):
        raise SafenetError(f"--name {name!r}: use a plain folder name")
    sel0 = Selection.resolve(algos[0], envs[0], pm)
    base = sel0.compose(preset=preset, files=files, overrides=list(overrides))
    sweep_dir = (Path(str(base.run.dir)) / "sweeps" / name).resolve()
    trials: list[Trial] = []
    total_steps: dict[str, int] = {}
    for algo, env in itertools.product(algos, envs):
        sel = Selection.resolve(algo, env, pm)
        for values in itertools.product(*[g.values for g in grid]):
            gv = dict(zip(keys, values))
            for seed in range(seeds):
                tname = trial_name(sel.algo.name, env, seed, gv)
                ov = [*overrides, *(f"{k}={v}" for k, v in gv.items()), f"seed={seed}", f"run.dir={sweep_dir}",
                      f"run.name={tname}", "run.progress=none", f"trainer.cpus={cpus_per_trial}"]
                try:
                    cfg = sel.compose(preset=preset, files=files, overrides=ov)
                except ConfigError as exc:
                    raise ConfigError(f"trial {tname}: {exc}") from None
                trials.append(Trial(tname, sel.algo.name, env, seed, gv, ov))
                total_steps[tname] = int(cfg.trainer.total_steps)
    return SweepPlan(name, sweep_dir, trials, preset, list(files), keys, total_steps)


def open_sweep_dir(plan: SweepPlan) -> None:
    """Create the sweep folder and its ``sweep.json``; a folder holding another grid is refused."""
    path = plan.dir / SWEEP_FILE
    record = plan.record()
    if path.exists():
        old = json.loads(path.read_text())
        if [t["name"] for t in old.get("trials", [])] != [t.name for t in plan.trials] or \
                [t["overrides"] for t in old.get("trials", [])] != [t.overrides for t in plan.trials]:
            raise SafenetError(f"sweep {plan.name!r} in {plan.dir} was started with a different grid or overrides; "
                               f"give another --name (or remove the folder)")
        return
    plan.dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2))


def is_sweep_dir(path: str | Path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


def sweep_trial_dirs(path: str | Path) -> list[Path]:
    """The run directories of a sweep's trials that exist (in the sweep's order)."""
    record = json.loads((Path(path) / SWEEP_FILE).read_text())
    return [Path(path) / t["name"] for t in record["trials"] if is_run_dir(Path(path) / t["name"])]


def checkpoint_steps(run_dir: Path) -> int:
    """Env steps of a run's latest checkpoint (0 without one)."""
    ckpt = run_dir / CKPT_DIR
    pointer = ckpt / LATEST
    names = [pointer.read_text().strip()] if pointer.exists() else sorted(p.name for p in ckpt.glob("ckpt_*.pt"))
    for n in reversed(names):
        if (ckpt / n).exists():
            try:
                return int(n[len("ckpt_"):-len(".pt")])
            except ValueError:
                return 0
    return 0


def is_finished(run_dir: Path, total_steps: int) -> bool:
    return is_run_dir(run_dir) and checkpoint_steps(run_dir) >= total_steps


def read_trial_record(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / TRIAL_FILE).read_text())
    except (OSError, ValueError):
        return {}


def write_trial_record(run_dir: Path, **fields: Any) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / TRIAL_FILE, json.dumps({**read_trial_record(run_dir), **fields}, indent=2, default=str))


def _last(rows: list[dict[str, str]], key: str) -> float:
    for r in reversed(rows):
        v = r.get(key, "")
        if v not in ("", None):
            try:
                x = float(v)
            except ValueError:
                continue
            if not math.isnan(x):
                return x
    return float("nan")


def trial_row(plan_trial: dict[str, Any], sweep_dir: Path, grid_keys: Sequence[str]) -> dict[str, Any]:
    """One ``summary.csv`` row from a trial's run directory and ``trial.json``."""
    run_dir = sweep_dir / plan_trial["name"]
    rec = read_trial_record(run_dir)
    row: dict[str, Any] = {"trial": plan_trial["name"], "algo": plan_trial["algo"], "env": plan_trial["env"],
                           "seed": plan_trial["seed"]}
    row.update({k: plan_trial["grid"].get(k, "") for k in grid_keys})
    status = rec.get("status", "pending" if not is_run_dir(run_dir) else "unfinished")
    row["status"] = status
    rows: list[dict[str, str]] = []
    if (run_dir / METRICS_FILE).exists():
        with open(run_dir / METRICS_FILE, newline="") as fh:
            rows = list(csv.DictReader(fh))
    row["env_steps"] = int(_last(rows, "env_steps")) if rows else 0
    row["return"] = _last(rows, "rollout/ep_return")
    row["eval_return"] = _last(rows, "eval/ep_return")
    for k in (rows[0].keys() if rows else []):
        if k.startswith("rollout/ep_cost/"):
            c = k.split("/", 2)[2]
            row[f"cost/{c}"] = _last(rows, k)
            row[f"limit/{c}"] = _last(rows, f"limit/{c}")
    row["wall_s"] = round(float(rec.get("wall_s", 0.0)), 1)
    row["node"] = rec.get("node", "")
    row["error"] = rec.get("error", "") if status == "failed" else ""
    return row


def write_summary(sweep_dir: Path) -> tuple[Path, list[dict[str, Any]]]:
    """``summary.csv``: one row per trial, in the sweep's order."""
    record = json.loads((sweep_dir / SWEEP_FILE).read_text())
    rows = [trial_row(t, sweep_dir, record["grid_keys"]) for t in record["trials"]]
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    tail = ["wall_s", "node", "error"]
    cols = [c for c in cols if c not in tail] + tail
    path = sweep_dir / SUMMARY_CSV
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())
    return path, rows


def write_summary_plot(sweep_dir: Path) -> Path | None:
    """``summary.png`` from the trials that logged metrics (None when none has yet)."""
    from .plot import plot_runs

    dirs = [d for d in sweep_trial_dirs(sweep_dir) if (d / METRICS_FILE).exists() and (d / METRICS_FILE).stat().st_size]
    if not dirs:
        return None
    try:
        return plot_runs(dirs, sweep_dir / SUMMARY_PNG)
    except SafenetError:
        return None
