"""Running a sweep's trials on Ray Tune (imported only by ``safenet sweep``; the core never needs Ray).

Each trial runs in a Ray worker process and calls the same code as ``safenet train`` in-process:
:func:`~safenet.trainer.start_run` for a new trial, :func:`~safenet.trainer.resume_run` for one with a
run directory, then ``Trainer.train``. In-process (not a subprocess of the CLI) so the trial reports
its metrics to Tune from the trainer's iteration listener, its errors reach Tune as exceptions, and
no second interpreter start is paid per trial. Resuming is the run directory's own: the driver skips
trials whose latest checkpoint reached ``trainer.total_steps``, and the others continue from their
last checkpoint, so a killed sweep loses at most what its trials' checkpoints lose.
"""
from __future__ import annotations

import logging
import math
import shutil
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .errors import SafenetError
from .sweep import (SweepPlan, is_finished, is_run_dir, open_sweep_dir, read_trial_record, write_summary,
                    write_summary_plot, write_trial_record)

INSTALL_HINT = "safenet sweep needs Ray Tune: pip install 'safenet[ray]' (scripts/setup.sh installs it)"
REPORT_INTERVAL_S = 2.0
ERROR_FILE = "error.txt"          # a failed trial's traceback, in its run directory


def require_ray() -> None:
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        raise SafenetError(INSTALL_HINT) from None


# -- inside a Ray worker ---------------------------------------------------------------------------
def progress_metrics(row: dict[str, float], total: int, steps0: int, t0: float) -> dict[str, float]:
    """What a trial reports to Tune: env steps, return, cost per constraint and its limit, steps/s, ETA."""
    steps = int(row.get("env_steps", 0))
    rate = (steps - steps0) / max(time.time() - t0, 1e-9)
    out = {"env_steps": steps, "total_steps": total, "fps": float(row.get("time/fps", 0.0)),
           "eta_s": (total - steps) / rate if rate > 0 else float("nan")}
    for k, v in row.items():
        if k == "rollout/ep_return" or k.startswith(("rollout/ep_cost/", "limit/")):
            out[k] = float(v)
    return out


def run_trial(config: dict[str, Any]) -> None:
    """The Tune trainable: one trial, started or resumed in its run directory."""
    import ray
    from ray import tune

    from .trainer import Selection, resume_run, start_run

    trial, sweep_dir = config["trial"], Path(config["sweep_dir"])
    total = int(trial["total_steps"])
    node, node_id = ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()
    if not sweep_dir.is_dir():
        raise SafenetError(f"sweep folder {sweep_dir} is not visible on node {node}: put run.dir on a filesystem "
                           f"every node of the cluster mounts (see docs/scale-out.md)")
    run_dir = sweep_dir / trial["name"]
    prior = read_trial_record(run_dir)
    wall0 = float(prior.get("wall_s", 0.0))
    t0 = time.time()
    try:
        if run_dir.exists() and not is_run_dir(run_dir):
            shutil.rmtree(run_dir)                     # an attempt that failed before its run existed
        if is_run_dir(run_dir):
            trainer = resume_run(run_dir)
        else:
            sel = Selection.resolve(trial["algo"], trial["env"])
            cfg = sel.compose(preset=config.get("preset"), files=config.get("config_files", []),
                              overrides=trial["overrides"])
            trainer = start_run(sel, cfg, argv=["safenet", "sweep", "trial", trial["name"]])
        attempts = int(prior.get("attempts", 0)) + 1
        write_trial_record(run_dir, status="running", node=node, node_id=node_id, attempts=attempts, error="", wall_s=wall0)
        steps0, last = trainer.env_steps, [0.0]

        def report(row: dict[str, float]) -> None:
            now = time.monotonic()
            if now - last[0] >= REPORT_INTERVAL_S or int(row["env_steps"]) >= total:
                last[0] = now
                tune.report(progress_metrics(row, total, steps0, t0))
                write_trial_record(run_dir, wall_s=wall0 + time.time() - t0)

        trainer.listeners.append(report)
        trainer.train()
        status = "completed" if trainer.env_steps >= total else "interrupted"
        write_trial_record(run_dir, status=status, wall_s=wall0 + time.time() - t0, env_steps=trainer.env_steps)
    except BaseException as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ERROR_FILE).write_text(traceback.format_exc())
        write_trial_record(run_dir, status="failed", node=node, error=f"{type(exc).__name__}: {msg}",
                           wall_s=wall0 + time.time() - t0)
        raise


# -- the live table (driver) -----------------------------------------------------------------------
def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _eta(s: Any) -> str:
    if s is None or (isinstance(s, float) and (math.isnan(s) or math.isinf(s))):
        return "-"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def make_table_callback(plan: SweepPlan, reused: list[str], interval_s: float):
    """A Tune callback that prints the table of trials every ``interval_s`` seconds and at the end."""
    from ray import tune
    from rich.console import Console
    from rich.table import Table

    class TrialTable(tune.Callback):
        def __init__(self) -> None:
            self.state: dict[str, dict[str, Any]] = {n: {"status": "reused"} for n in reused}
            for t in plan.trials:
                self.state.setdefault(t.name, {"status": "pending"})
            self.last_print = 0.0

        def _name(self, trial) -> str:
            return trial.config["trial"]["name"]

        def on_trial_start(self, iteration, trials, trial, **info):
            self.state[self._name(trial)].update(status="running")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.state[self._name(trial)].update(status="running", node=result.get("node_ip", ""), **result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.state[self._name(trial)]["status"] = "completed"

        def on_trial_error(self, iteration, trials, trial, **info):
            name = self._name(trial)
            rec = read_trial_record(plan.dir / name)
            self.state[name].update(status="failed", error=rec.get("error") or "see the Tune log")
            print(f"trial {name} failed: {self.state[name]['error']}", flush=True)

        def on_step(self, iteration, trials, **info):
            if time.monotonic() - self.last_print >= interval_s:
                self.print()

        def on_experiment_end(self, trials, **info):
            self.print()

        def print(self) -> None:
            self.last_print = time.monotonic()
            table = Table(title=f"sweep {plan.name}")
            for col in ("trial", "status", "node", "env steps", "return", "cost / limit", "ETA"):
                table.add_column(col)
            for t in plan.trials:
                s = self.state[t.name]
                costs = "  ".join(f"{k.split('/', 2)[2]} {_fmt(v, 3)}/{_fmt(s.get('limit/' + k.split('/', 2)[2]), 3)}"
                                  for k, v in s.items() if k.startswith("rollout/ep_cost/"))
                steps = f"{s['env_steps']}/{plan.total_steps[t.name]}" if "env_steps" in s else "-"
                table.add_row(t.name, s["status"], str(s.get("node", "")), steps, _fmt(s.get("rollout/ep_return")),
                              costs or "-", _eta(s.get("eta_s")) if s["status"] == "running" else "-")
            Console(width=max(120, Console().width)).print(table)

    return TrialTable()


def init_ray(address: str | None) -> None:
    import ray

    from .cpus import machine_cpus

    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)    # failed trials: our table, trial.json, error.txt
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING, "include_dashboard": False}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(address="local", num_cpus=machine_cpus(), **kwargs)   # never a cluster left behind by `ray start`
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise SafenetError(f"cannot start or join {where}: {str(exc).splitlines()[0] if str(exc) else exc}") from None


def run_sweep(plan: SweepPlan, *, address: str | None = None, max_concurrent: int = 0, cpus_per_trial: int = 1,
              table_interval_s: float = 10.0) -> tuple[int, list[dict[str, Any]]]:
    """Run the plan's unfinished trials on Ray Tune; write ``summary.csv`` / ``summary.png``.
    Returns (number of failed trials, summary rows)."""
    require_ray()
    import ray
    from ray import tune

    open_sweep_dir(plan)
    reused = [t.name for t in plan.trials if is_finished(plan.dir / t.name, plan.total_steps[t.name])]
    todo = [t for t in plan.trials if t.name not in reused]
    if reused:
        print(f"reusing {len(reused)} finished trial(s): {', '.join(reused)}")
    if todo:
        init_ray(address)
        try:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            cpus = sum(n.get("Resources", {}).get("CPU", 0) for n in nodes)
            print(f"ray: {len(nodes)} node(s), {cpus:g} CPUs; {len(todo)} trial(s) to run, {cpus_per_trial} CPU(s) each")
            table = make_table_callback(plan, reused, table_interval_s)
            trials = [{**asdict(t), "total_steps": plan.total_steps[t.name]} for t in todo]
            space = {"trial": tune.grid_search(trials), "sweep_dir": str(plan.dir), "preset": plan.preset,
                     "config_files": plan.config_files}
            tuner = tune.Tuner(
                tune.with_resources(run_trial, {"cpu": cpus_per_trial}), param_space=space,
                tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent or None,
                                            trial_name_creator=lambda tr: tr.config["trial"]["name"],
                                            trial_dirname_creator=lambda tr: tr.config["trial"]["name"]),
                run_config=tune.RunConfig(name=time.strftime("tune-%Y%m%d-%H%M%S"), storage_path=str(plan.dir / ".tune"),
                                          verbose=0, callbacks=[table], failure_config=tune.FailureConfig(max_failures=0)))
            tuner.fit()
        finally:
            ray.shutdown()
    _, rows = write_summary(plan.dir)
    write_summary_plot(plan.dir)
    failed = sum(r["status"] == "failed" for r in rows)
    return failed, rows
