"""The training loop: collect → update → log → evaluate → checkpoint."""
from __future__ import annotations

import random
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig

from . import __version__, config as cfgmod
from .algorithm import Algorithm
from .copies import CopyRNG
from .cpus import set_cpu_budget, torch_threads
from .device import resolve_device, usable_devices
from . import finite
from .errors import ConfigError, IncompatibleError, NonFiniteError, RunFileError, SafenetError
from .game import BatchedGame, GameSpec
from .plugins import PluginManager, get_plugin_manager
from .progress import Progress, describe
from .rollout import Collector, EpisodeStats
from .runs import Run, load_checkpoint, new_run_dir
from .specs import AlgorithmSpec, EnvSpec


@dataclass
class Selection:
    """An algorithm and an environment picked from the registries, with the names users typed."""

    algo: AlgorithmSpec
    env: EnvSpec
    algo_name: str
    env_name: str
    implied: dict

    @classmethod
    def resolve(cls, algo: str, env: str, pm: PluginManager | None = None) -> "Selection":
        pm = pm or get_plugin_manager()
        a = pm.algorithm(algo)
        e, implied = pm.environment(env)
        why = a.incompatibility(e.tags)
        if why:
            raise IncompatibleError(f"cannot train {a.name!r} on {env!r}: {why}")
        return cls(a, e, a.name, env, implied)

    def compose(self, **kwargs) -> DictConfig:
        return cfgmod.compose(self.algo, self.env, implied=self.implied, **kwargs)


def derived_seed(seed: int, stream: int) -> int:
    """Independent seeds for the game copies (stream 0), the algorithm (1) and evaluation (2), so the
    algorithm's random draws are never the game's draws."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0])


def make_game(sel: Selection, cfg: DictConfig, num_envs: int, seed: int) -> BatchedGame:
    factory = sel.env.load()
    game = factory(cfgmod.section_object(cfg.env), num_envs=num_envs, seed=seed)
    missing = sel.algo.requires - game.spec.tags
    if missing:  # the env's declared tags were wrong; still refuse before training
        raise IncompatibleError(f"cannot train {sel.algo.name!r} on {sel.env_name!r}: the game lacks {sorted(missing)}")
    return game


def run_device(sel: Selection, cfg: DictConfig) -> torch.device:
    """``trainer.device``, refused in one line if the algorithm or this machine cannot run it."""
    return resolve_device(str(cfg.trainer.device), sel.algo.devices, sel.algo.name)


def make_algorithm(sel: Selection, spec: GameSpec, cfg: DictConfig) -> Algorithm:
    """The run's algorithm on ``trainer.device`` (given to the algorithm as a string, e.g. ``"cuda:0"``)."""
    device = run_device(sel, cfg)
    cls = sel.algo.load()
    return cls(spec, cfgmod.section_object(cfg.algo), seed=derived_seed(int(cfg.seed), 1), device=str(device))


#: torch's own intra-op thread count, before any run changed it
TORCH_DEFAULT_THREADS = torch.get_num_threads()


def bound_threads(cfg: DictConfig) -> int:
    """Apply ``trainer.cpus`` to this process: environments' default thread pools
    (:func:`safenet.cpus.cpu_budget`) and torch's intra-op threads (``trainer.torch_threads`` wins).
    Returns the run's CPU budget."""
    budget = set_cpu_budget(int(cfg.trainer.cpus))
    torch.set_num_threads(torch_threads(budget, int(cfg.trainer.torch_threads), TORCH_DEFAULT_THREADS))
    return budget


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def episode_metrics(stats: EpisodeStats, spec: GameSpec, prefix: str) -> dict[str, float]:
    """Team episode return (mean over agents of each agent's episode return) and costs per constraint."""
    out: dict[str, float] = {}
    if not len(stats):
        return out
    ret = np.stack(stats.returns)              # [E, n]
    out[f"{prefix}/ep_return"] = float(ret.mean())
    out[f"{prefix}/ep_length"] = float(np.mean(stats.lengths))
    if stats.disc_returns:
        out[f"{prefix}/ep_disc_return"] = float(np.stack(stats.disc_returns).mean())
    if spec.max_costs:
        cost = np.stack(stats.costs)           # [E, n, m]
        mask = spec.cost_mask()
        for j, name in enumerate(spec.cost_names):
            per_agent = cost[:, mask[:, j], j].mean(axis=0)   # mean episode cost of each constrained agent
            out[f"{prefix}/ep_cost/{name}"] = float(per_agent.mean())
            out[f"{prefix}/ep_cost_max/{name}"] = float(per_agent.max())
    for name, values in stats.metrics.items():     # the game's own episode metrics (info["episode_metrics"])
        vals = np.asarray(values, dtype=np.float64)
        if np.isfinite(vals).any():
            out[f"{prefix}/env/{name}"] = float(np.nanmean(vals))
    return out


def algo_gamma(cfg: DictConfig) -> float | None:
    """The algorithm's discount, used to also log discounted episode returns."""
    g = cfg.algo.get("gamma") if "gamma" in cfg.algo else None
    return float(g) if g is not None else None


def evaluate(algo: Algorithm, game: BatchedGame, episodes: int, seed: int, *, deterministic: bool = True,
             gamma: float | None = None) -> dict[str, float]:
    """Evaluation (deterministic by default) over exactly ``episodes`` complete episodes."""
    collector = Collector(game, seed=seed, gamma=gamma)
    stats = EpisodeStats()
    while len(stats) < episodes:
        _, s = collector.collect(algo, game.spec.episode_length, deterministic=deterministic)
        for k in ("returns", "disc_returns", "costs", "lengths"):
            getattr(stats, k).extend(getattr(s, k))
        for name, values in s.metrics.items():
            stats.metrics.setdefault(name, []).extend(values)
    for k in ("returns", "disc_returns", "costs", "lengths"):
        setattr(stats, k, getattr(stats, k)[:episodes])
    stats.metrics = {name: values[:episodes] for name, values in stats.metrics.items()}
    return episode_metrics(stats, game.spec, "eval")


class Trainer:
    """Runs one training run in a run directory (fresh or resumed)."""

    def __init__(self, sel: Selection, cfg: DictConfig, run: Run, pm: PluginManager | None = None) -> None:
        self.sel, self.cfg, self.run = sel, cfg, run
        self.pm = pm or get_plugin_manager()
        t = cfg.trainer
        self.device = run_device(sel, cfg)          # refuse an unusable device before anything is built
        self.cpus = bound_threads(cfg)
        seed_everything(int(cfg.seed))
        game_seed = derived_seed(int(cfg.seed), 0)
        self.env_steps = 0
        self.iteration = 0
        self.workers = int(t.workers)
        # with rollout workers the learner's own game only gives the spec (one copy)
        self.game = make_game(sel, cfg, 1 if self.workers else int(t.n_envs), game_seed)
        self.spec = self.game.spec
        self.algo = make_algorithm(sel, self.spec, cfg)
        if self.algo.per_copy_sampling:
            self.algo.copy_streams = CopyRNG.for_batch(self._streams_seed(), int(t.n_envs))
        self.rollout_steps = int(t.rollout_steps) or int(getattr(self.algo, "rollout_steps", 128))
        if getattr(self.algo, "needs_whole_episodes", False) and self.rollout_steps % self.spec.episode_length:
            raise ConfigError(f"trainer.rollout_steps={self.rollout_steps}: {sel.algo.name!r} learns from whole "
                              f"episodes, so it must be a multiple of the episode length ({self.spec.episode_length})")
        self.gamma = algo_gamma(cfg)
        if self.workers:
            self._check_workers()
            from .workers import RemoteCollector

            self.collector = RemoteCollector(sel.algo_name, sel.env_name, cfgmod.to_yaml(cfg), int(t.n_envs),
                                             self.workers, game_seed, self._streams_seed(), self.gamma)
        else:
            self.collector = Collector(self.game, seed=game_seed, gamma=self.gamma)
        self.eval_game: BatchedGame | None = None
        self.env_steps = 0
        self.iteration = 0
        self._stop_signal: int | None = None
        self._last_eval_steps = 0
        self._last_ckpt_time = time.monotonic()
        self._round_trip_checked = False
        #: called with every iteration's metrics row after it is logged (e.g. a sweep reports it to Ray Tune)
        self.listeners: list[Callable[[dict[str, float]], None]] = []

    def _streams_seed(self) -> int:
        """Seed of the per-copy action noise (:mod:`safenet.copies`); after a resume, of its position."""
        return derived_seed(int(self.cfg.seed), 5) + self.iteration

    def _check_workers(self) -> None:
        """``trainer.workers`` needs per-copy randomness on both sides, or the batch would not be the in-process one."""
        if not getattr(self.game, "per_copy_seeds", False):
            raise ConfigError(f"trainer.workers={self.workers}: environment {self.sel.env_name!r} does not seed its "
                              f"copies one by one (BatchedGame.per_copy_seeds), so its copies cannot be split over "
                              f"workers; use trainer.workers=0")
        if not self.algo.per_copy_sampling:
            raise ConfigError(f"trainer.workers={self.workers}: algorithm {self.sel.algo.name!r} draws its actions for "
                              f"the whole batch (Algorithm.per_copy_sampling), so its copies cannot be split over "
                              f"workers; use trainer.workers=0")

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call a lifecycle hook on every plugin; an exception names the plugin that raised it."""
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception as exc:
                raise SafenetError(f"plugin {impl.plugin_name!r} failed in {hook}: {type(exc).__name__}: {exc}") from exc

    # -- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"algo": self.algo.state_dict(), "env_steps": self.env_steps, "iteration": self.iteration,
                "torch_rng": torch.get_rng_state(), "config_yaml": cfgmod.to_yaml(self.cfg),
                "safenet_version": __version__, "algo_name": self.sel.algo.name, "env_name": self.sel.env_name}

    def stop_nonfinite(self, what: str, when: str, iteration: int) -> None:
        """Stop the run: ``what`` (a quantity, its agent and env step) became nan/inf ``when``."""
        last = self.run.latest_checkpoint()
        kept = (f"the run keeps its last good checkpoint {last.name}" if last is not None else
                "no checkpoint was written yet (resume starts from the beginning)")
        raise NonFiniteError(
            f"training stopped at iteration {iteration}: non-finite {what} {when}; {kept}. Remove the "
            f"cause (a learning rate, clip or scale too large for this game) and continue with: safenet train "
            f"--resume {self.run.dir} [key=value ...]")

    def checkpoint(self) -> Path:
        state = self.state()
        bad = finite.in_state(state["algo"], self.spec.agents)
        if bad:                                     # never let a checkpoint hold nan/inf
            self.stop_nonfinite(bad, f"in the algorithm's state after {self.env_steps} env steps", self.iteration)
        path = self.run.save_checkpoint(state, self.env_steps, keep=int(self.cfg.trainer.keep_checkpoints))
        self._last_ckpt_time = time.monotonic()
        if not self._round_trip_checked:            # once per process: cheap, and catches a useless checkpoint early
            self._round_trip_checked = True
            self.verify_checkpoint(path)
        self.notify("safenet_checkpoint_saved", run=self.run, path=str(path), env_steps=self.env_steps)
        return path

    def verify_checkpoint(self, path: Path, batches: list | None = None) -> None:
        """Reload ``path`` into a fresh algorithm and check it acts like ``self.algo`` (see :mod:`safenet.roundtrip`)
        on ``batches`` of ``(obs, info)`` (default: the observations the copies are at now)."""
        from .roundtrip import verify_checkpoint

        def fresh() -> Algorithm:
            return self.sel.algo.load()(self.spec, cfgmod.section_object(self.cfg.algo),
                                        seed=derived_seed(int(self.cfg.seed), 4), device=self.cfg.trainer.device)

        verify_checkpoint(path, self.algo, fresh, batches or [(self.collector.obs, self.collector.info)])

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        load_algo_state(self.algo, state, path, self.sel)
        try:
            self.env_steps, self.iteration = int(state["env_steps"]), int(state["iteration"])
            torch.set_rng_state(state["torch_rng"])
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign checkpoint
            raise RunFileError(f"checkpoint {path} lacks the run's counters or random state ({type(exc).__name__}: "
                               f"{exc}); use another of the run's checkpoints") from None
        self._last_eval_steps = self.env_steps
        dropped = self.run.metrics.truncate_after(self.env_steps)
        if dropped:
            print(f"resume: dropped {dropped} metrics rows logged after the checkpoint at {self.env_steps} steps")
        # copies start fresh episodes, seeded by the position in the run
        if self.algo.copy_streams is not None:
            self.algo.copy_streams.reseed(self._streams_seed())
        if self.workers:
            self.collector.restart(derived_seed(int(self.cfg.seed), 3) + self.iteration, self._streams_seed())
        else:
            self.collector.restart(seed=derived_seed(int(self.cfg.seed), 3) + self.iteration)

    # -- the loop -------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        if self._stop_signal is not None:
            raise KeyboardInterrupt
        self._stop_signal = signum

    def train(self) -> dict[str, float]:
        cfg, t, spec = self.cfg, self.cfg.trainer, self.spec
        total = int(t.total_steps)
        # signals reach only the main thread (a trial of a sweep trains in a Ray worker's thread)
        in_main = threading.current_thread() is threading.main_thread()
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
        limits = spec.cost_limit_array()
        mask = spec.cost_mask()
        limit_row = {f"limit/{c}": float(limits[mask[:, j], j].mean()) for j, c in enumerate(spec.cost_names)}
        progress = Progress(total, self.env_steps, mode=cfg.run.progress, interval_s=cfg.run.log_interval_s,
                            title=f"{self.sel.algo_name} on {self.sel.env_name}")
        status, error, last_row = "completed", None, {}
        last: dict[str, float] = {}
        try:
            self.notify("safenet_run_start", run=self.run, config=cfgmod.OmegaConf.to_container(cfg, resolve=True))
            while self.env_steps < total and self._stop_signal is None:
                t0 = time.perf_counter()
                rollout, stats = self.collector.collect(self.algo, self.rollout_steps)
                bad = finite.in_rollout(rollout, spec.agents, self.env_steps)
                if bad:
                    self.stop_nonfinite(bad, "while collecting experience", self.iteration + 1)
                t1 = time.perf_counter()
                train_metrics = self.algo.update(rollout)
                t2 = time.perf_counter()
                bad = finite.in_metrics(train_metrics)
                if bad:
                    self.stop_nonfinite(bad, f"after {self.env_steps + rollout.steps} env steps", self.iteration + 1)
                self.env_steps += rollout.steps
                self.iteration += 1
                row: dict[str, float] = {"env_steps": self.env_steps, "iteration": self.iteration}
                ep = episode_metrics(stats, spec, "rollout")
                last.update(ep)
                row.update(ep)
                row.update(limit_row)
                row.update({k: float(v) for k, v in train_metrics.items()})
                row.update({f"comm/{k}": float(v) for k, v in self.algo.communication().items()})
                row["time/fps"] = rollout.steps / max(t2 - t0, 1e-9)
                row["time/collect_s"] = t1 - t0
                row["time/update_s"] = t2 - t1
                if self.workers:    # weights out, batches back and merging: the price of the workers
                    row["time/workers_overhead_s"] = (t1 - t0) - self.collector.timing["worker_s"]
                if self._eval_due(total):
                    ev = self.evaluate(int(t.eval_episodes))
                    row.update(ev)
                    self.notify("safenet_evaluation_end", run=self.run, env_steps=self.env_steps, metrics=ev)
                self.run.log(row)
                last_row = row
                for listener in self.listeners:
                    listener(row)
                self.notify("safenet_iteration_end", run=self.run, iteration=self.iteration,
                            env_steps=self.env_steps, metrics=row)
                if self._checkpoint_due():
                    self.checkpoint()
                progress.update(self.env_steps, describe({**last, **row}, list(spec.cost_names)))
            if self._stop_signal is not None:
                status = "interrupted"
            self.checkpoint()
        except BaseException as exc:
            status, error = ("interrupted", None) if isinstance(exc, KeyboardInterrupt) else ("failed", exc)
            raise
        finally:
            progress.update(self.env_steps, describe({**last, **last_row}, list(spec.cost_names)), force=True)
            progress.close()
            for s, h in handlers.items():
                signal.signal(s, h)
            try:
                self.notify("safenet_run_end", run=self.run, status=status, error=error)
            finally:
                self.run.close()
                if self.workers:
                    self.collector.close()
        return {**last, **last_row}

    def _eval_due(self, total: int) -> bool:
        every = int(self.cfg.trainer.eval_every_steps)
        if every < 0:
            return False
        if self.env_steps >= total:
            return True
        if every == 0:
            return False
        due = self.env_steps // every > self._last_eval_steps // every
        if due:
            self._last_eval_steps = self.env_steps
        return due

    def _checkpoint_due(self) -> bool:
        t = self.cfg.trainer
        if t.checkpoint_every:
            return self.iteration % int(t.checkpoint_every) == 0
        return time.monotonic() - self._last_ckpt_time >= float(t.checkpoint_interval_s)

    def evaluate(self, episodes: int) -> dict[str, float]:
        if self.eval_game is None:
            n = min(int(self.cfg.trainer.n_envs), episodes)
            self.eval_game = make_game(self.sel, self.cfg, n, derived_seed(int(self.cfg.seed), 2))
        streams, self.algo.copy_streams = self.algo.copy_streams, None    # evaluation draws nothing of training's noise
        try:
            return evaluate(self.algo, self.eval_game, episodes, seed=derived_seed(int(self.cfg.seed), 2) + self.iteration,
                            deterministic=bool(self.cfg.trainer.eval_deterministic), gamma=self.gamma)
        finally:
            self.algo.copy_streams = streams


def start_run(sel: Selection, cfg: DictConfig, argv: list[str] | None = None, pm: PluginManager | None = None) -> Trainer:
    from .paths import writable_dir

    pm = pm or get_plugin_manager()
    writable_dir(cfg.run.dir, "run.dir")
    try:
        path = new_run_dir(cfg.run.dir, sel.algo.name, cfgmod_name(sel.env_name), int(cfg.seed), cfg.run.name)
    except OSError as exc:
        raise SafenetError(f"run.dir={cfg.run.dir}: cannot create the run directory ({exc}); "
                           f"give a folder you can write to") from None
    run = Run(path, tensorboard=bool(cfg.run.tensorboard))
    run.write_config(cfgmod.to_yaml(cfg))
    plugins = {i.distribution: i.version for i in pm.infos}
    run.write_meta({**({"argv": list(argv)} if argv is not None else {}), "algo": sel.algo.name, "env": sel.env_name, "safenet": __version__, "plugins": plugins,
                    "algo_plugin": getattr(pm.plugin_of(sel.algo), "distribution", None),
                    "env_plugin": getattr(pm.plugin_of(sel.env), "distribution", None)})
    try:
        return Trainer(sel, cfg, run, pm)
    except BaseException:
        run.close()
        shutil.rmtree(path, ignore_errors=True)      # nothing ran: leave no half-made run behind
        raise


def load_algo_state(algo: Algorithm, state: dict[str, Any], path: Path, sel: Selection,
                    cfg: DictConfig | None = None) -> None:
    """Load a checkpoint's algorithm state; one from another algorithm or environment is a
    :class:`RunFileError` naming the file. With ``cfg`` (a checkpoint from outside the run), the
    environment config recorded in the checkpoint must also match the run's."""
    want = (sel.algo.name, sel.env_name)
    if "algo" not in state or "env_steps" not in state:
        raise RunFileError(f"checkpoint {path} is not a safenet training checkpoint (no algorithm state or "
                           f"env_steps); use one of the run's checkpoints/ckpt_*.pt files")
    got = (state.get("algo_name"), state.get("env_name"))
    if got[0] is not None and (got[0] != want[0] or cfgmod_name(str(got[1])) != cfgmod_name(want[1])):
        raise RunFileError(f"checkpoint {path} is from {got[0]!r} on {got[1]!r}, not this run's {want[0]!r} on "
                           f"{want[1]!r}; use one of this run's own checkpoints")
    if cfg is not None and isinstance(state.get("config_yaml"), str):
        try:
            theirs = cfgmod.OmegaConf.to_container(cfgmod.OmegaConf.create(state["config_yaml"]).get("env") or {})
        except Exception:  # noqa: BLE001 - an unreadable copy is only a missed check
            theirs = None
        ours = cfgmod.OmegaConf.to_container(cfg.env, resolve=True)
        if isinstance(theirs, dict):
            diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            if diff:
                k = diff[0]
                raise RunFileError(f"checkpoint {path} is from a run with env.{k}={theirs.get(k)!r}, this run has "
                                   f"env.{k}={ours.get(k)!r}; use one of this run's own checkpoints")
    try:
        algo.load_state_dict(state["algo"])
    except Exception as exc:  # noqa: BLE001 - shape/key mismatches of a foreign checkpoint
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise RunFileError(f"checkpoint {path} does not fit {want[0]!r} on {want[1]!r} with this run's config "
                           f"({type(exc).__name__}: {first}); it may come from another run or config: use one of "
                           f"this run's own checkpoints") from None


def cfgmod_name(env_name: str) -> str:
    return env_name.replace(":", "_").replace("/", "_")


def read_run(path: Path, pm: PluginManager | None = None, what: str = "") -> tuple[Run, Selection, DictConfig]:
    """A run directory's (unopened) ``Run``, its algorithm/env selection and its recorded config.
    ``what`` prefixes the error for a folder that is not a run (e.g. ``"--resume "``)."""
    from .runs import CONFIG_FILE, is_run_dir

    if not is_run_dir(path):
        raise SafenetError(f"{what}{path}: not a safenet run directory (it needs {CONFIG_FILE} and meta.json)")
    probe = Run.__new__(Run)
    probe.dir = path
    meta = probe.meta()
    sel = Selection.resolve(meta["algo"], meta["env"], pm)
    config_path = path / CONFIG_FILE
    try:
        cfg = cfgmod.from_yaml_text(config_path.read_text(), sel.algo, sel.env)
        cfgmod.validate(cfg)
    except (OSError, UnicodeDecodeError, SafenetError, Exception) as exc:  # noqa: BLE001 - yaml errors too
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunFileError(f"{config_path} is damaged or does not fit {sel.algo.name!r} on {sel.env_name!r} "
                           f"({first}); restore it (every checkpoint holds a copy under its 'config_yaml' key)") from None
    return probe, sel, cfg


def resume_run(path: str | Path, overrides: list[str] = (), pm: PluginManager | None = None) -> Trainer:
    pm = pm or get_plugin_manager()
    path = Path(path)
    if not path.is_dir():
        raise SafenetError(f"--resume {path}: no such directory")
    _, sel, cfg = read_run(path, pm, what="--resume ")
    if overrides:
        cfg = cfgmod.merge_overrides(cfg, overrides)
        cfgmod.validate(cfg)
    run = Run(path, resumed=True, tensorboard=bool(cfg.run.tensorboard))
    for tmp in run.remove_temporary_files():
        print(f"resume: removed {tmp.relative_to(path)}, a file half-written when the run was stopped")
    trainer = Trainer(sel, cfg, run, pm)
    ckpt = run.latest_checkpoint()
    if ckpt is None:
        print(f"resume: {path} has no checkpoint yet; starting from the beginning")
        run.metrics.truncate_after(0)
    else:
        trainer.restore(ckpt)
        print(f"resume: continuing from {ckpt.name} at {trainer.env_steps} env steps")
    if overrides:
        run.write_config(cfgmod.to_yaml(cfg))
        run.record_resume(trainer.env_steps, list(overrides))
    return trainer


@dataclass
class TrainedRun:
    """A finished (or checkpointed) run loaded back for evaluation: its selection, config, one of its
    checkpoints, a game of ``num_envs`` copies and the algorithm with the checkpoint's weights."""

    path: Path
    sel: Selection
    cfg: DictConfig
    checkpoint: Path
    state: dict[str, Any]
    game: BatchedGame
    algo: Algorithm


def load_trained(path: str | Path, num_envs: int, seed: int, checkpoint: str | Path | None = None,
                 pm: PluginManager | None = None, device: str | None = None) -> TrainedRun:
    """Load run directory ``path`` (its latest checkpoint unless ``checkpoint`` is given) for evaluation.

    ``device``: where the algorithm runs; None: the run's ``trainer.device`` when this machine has it,
    else the cpu (a run trained on a GPU evaluates on a machine without one; a note says so).
    """
    path = Path(path)
    probe, sel, cfg = read_run(path, pm)
    ckpt = Path(checkpoint) if checkpoint else probe.latest_checkpoint()
    if ckpt is None:
        raise SafenetError(f"{path}: no checkpoint to evaluate yet")
    trained_on = str(cfg.trainer.device)
    if device is None and trained_on != "cpu" and trained_on not in usable_devices():
        print(f"note: {path.name} was trained on {trained_on}, which this machine lacks; evaluating on the cpu")
        device = "cpu"
    if device is not None:
        cfg.trainer.device = device
    bound_threads(cfg)
    state = load_checkpoint(ckpt)
    game = make_game(sel, cfg, num_envs, seed)
    algo = make_algorithm(sel, game.spec, cfg)
    own = ckpt.resolve().parent == (path / "checkpoints").resolve()
    load_algo_state(algo, state, ckpt, sel, None if own else cfg)
    return TrainedRun(path, sel, cfg, ckpt, state, game, algo)
