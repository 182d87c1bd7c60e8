"""Training runs on the toy game: run directory, metrics, checkpoints, resume, hooks, signals."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import safenet
from safenet import hookimpl
from safenet.algorithm import Algorithm
from safenet.config import from_yaml_text
from safenet.errors import ConfigError, IncompatibleError, SafenetError
from safenet.runs import Run, atomic_write_text, load_checkpoint
from safenet.specs import AlgorithmSpec, EnvSpec
from safenet.testing import ToyConfig, check_algorithm, make_toy
from safenet.trainer import Selection, evaluate, make_game, resume_run, start_run

N_ENVS = 2
STEPS_PER_ITER = 8 * N_ENVS            # sac collects one toy episode (8 steps) per copy per iteration
REQUIRED_COLUMNS = {"env_steps", "iteration", "rollout/ep_return", "rollout/ep_cost/uses", "limit/uses",
                    "train/lagrange/uses", "time/fps"}


def base_overrides(tmp_path: Path, total: int, **extra) -> list[str]:
    over = {"run.dir": str(tmp_path / "runs"), "run.progress": "none", "run.tensorboard": "false",
            "trainer.n_envs": N_ENVS, "trainer.total_steps": total, "trainer.checkpoint_every": 1,
            "trainer.eval_every_steps": -1, **extra}
    return [f"{k}={v}" for k, v in over.items()]


def train(pm, tmp_path, total, algo="sac", env="toy_line", **extra):
    sel = Selection.resolve(algo, env, pm)
    trainer = start_run(sel, sel.compose(overrides=base_overrides(tmp_path, total, **extra)), pm=pm)
    final = trainer.train()
    return trainer, final


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(Path(run_dir) / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def env_steps(run_dir: Path) -> list[int]:
    return [int(float(r["env_steps"])) for r in read_metrics(run_dir)]


def snapshot(path: Path) -> dict[str, bytes | None]:
    out = {}
    for p in sorted(Path(path).rglob("*")):
        out[str(p.relative_to(path))] = p.read_bytes() if p.is_file() else None
    return out


class Recorder:
    """A plugin recording every lifecycle hook call."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[tuple] = []
        self.stop_at = stop_at

    @hookimpl
    def safenet_run_start(self, run, config):
        self.calls.append(("start", run.resumed, config["trainer"]["total_steps"]))

    @hookimpl
    def safenet_iteration_end(self, run, iteration, env_steps, metrics):
        self.calls.append(("iteration", iteration, env_steps, metrics["env_steps"]))
        if self.stop_at == iteration:
            os.kill(os.getpid(), signal.SIGINT)

    @hookimpl
    def safenet_evaluation_end(self, run, env_steps, metrics):
        self.calls.append(("eval", env_steps, sorted(metrics)))

    @hookimpl
    def safenet_checkpoint_saved(self, run, path, env_steps):
        self.calls.append(("ckpt", Path(path).name, env_steps, Path(path).exists()))

    @hookimpl
    def safenet_run_end(self, run, status, error):
        self.calls.append(("end", status, error))

    def of(self, kind):
        return [c for c in self.calls if c[0] == kind]


# ------------------------------------------------------------------------------------------------
# check_algorithm and the run directory
# ------------------------------------------------------------------------------------------------

def test_check_algorithm_sac_on_toy(toy_pm, tmp_path):
    final = check_algorithm("sac", "toy_line", tmp_path, pm=toy_pm)
    assert final["env_steps"] == 2 * STEPS_PER_ITER and final["iteration"] == 2
    for key in ("rollout/ep_return", "rollout/ep_cost/uses", "eval/ep_return", "eval/ep_cost/uses",
                "train/lagrange/uses", "limit/uses"):
        assert key in final and np.isfinite(final[key]), key
    assert 0 <= final["rollout/ep_return"] <= 8 and 0 <= final["rollout/ep_cost/uses"] <= 8
    assert final["limit/uses"] == 3.0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert "sac-toy_line-s0" in run_dir.name


def test_check_algorithm_records_the_config_it_ran(toy_pm, tmp_path):
    final = check_algorithm("sac", "toy_line", tmp_path, pm=toy_pm)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    sel = Selection.resolve("sac", "toy_line", toy_pm)
    saved = from_yaml_text((run_dir / "config.yaml").read_text(), sel.algo, sel.env)
    assert saved.trainer.total_steps == final["env_steps"]


def test_run_directory_layout_metrics_and_checkpoints(toy_pm, tmp_path):
    rec = Recorder()
    toy_pm.add_plugin(rec, name="recorder")
    trainer, final = train(toy_pm, tmp_path, 4 * STEPS_PER_ITER, **{"trainer.keep_checkpoints": 2,
                                                                    "trainer.eval_every_steps": 2 * STEPS_PER_ITER,
                                                                    "trainer.eval_episodes": 3})
    d = trainer.run.dir
    assert d.parent == tmp_path / "runs"
    assert {"config.yaml", "meta.json", "metrics.csv", "checkpoints"} <= {p.name for p in d.iterdir()}

    # config.yaml: the fully resolved config, typed on reading back
    cfg = from_yaml_text((d / "config.yaml").read_text(), trainer.sel.algo, trainer.sel.env)
    assert cfg.trainer.total_steps == 4 * STEPS_PER_ITER and cfg.trainer.keep_checkpoints == 2
    assert cfg.algo.kappa == trainer.cfg.algo.kappa

    meta = json.loads((d / "meta.json").read_text())
    assert meta["algo"] == "sac" and meta["env"] == "toy_line" and meta["safenet"] == safenet.__version__
    assert isinstance(meta["argv"], list) and "git_sha" in meta and "plugins" in meta

    rows = read_metrics(d)
    assert REQUIRED_COLUMNS <= set(rows[0])
    assert [int(r["env_steps"]) for r in rows] == [16, 32, 48, 64]
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["limit/uses"]) == 3.0 for r in rows)
    assert all(float(r["time/fps"]) > 0 and float(r["train/lagrange/uses"]) >= 0 for r in rows)
    assert [r["eval/ep_return"] != "" for r in rows] == [False, True, False, True]
    assert final["env_steps"] == 64 and "eval/ep_return" in final

    # checkpoints: keep_checkpoints=2 respected, `latest` points at the newest, no temp files left
    ck = d / "checkpoints"
    assert sorted(p.name for p in ck.glob("ckpt_*.pt")) == ["ckpt_000000000048.pt", "ckpt_000000000064.pt"]
    assert (ck / "latest").read_text().strip() == "ckpt_000000000064.pt"
    assert sorted(p.name for p in ck.iterdir()) == ["ckpt_000000000048.pt", "ckpt_000000000064.pt", "latest"]
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]
    state = torch.load(ck / "ckpt_000000000064.pt", weights_only=True)
    assert state["env_steps"] == 64 and state["iteration"] == 4
    assert state["config_yaml"] == (d / "config.yaml").read_text()
    fresh = type(trainer.algo)(trainer.spec, trainer.algo.cfg, seed=123)
    fresh.load_state_dict(state["algo"])
    np.testing.assert_array_equal(fresh.theta, trainer.algo.theta)

    # lifecycle hooks, in order
    assert rec.calls[0] == ("start", False, 64)
    assert [c[1:] for c in rec.of("iteration")] == [(1, 16, 16), (2, 32, 32), (3, 48, 48), (4, 64, 64)]
    assert [c[1] for c in rec.of("eval")] == [32, 64]
    assert "eval/ep_return" in rec.of("eval")[0][2]
    assert all(c[3] for c in rec.of("ckpt"))                    # the file exists when the hook runs
    assert [c[2] for c in rec.of("ckpt")] == [16, 32, 48, 64, 64]
    assert rec.calls[-1] == ("end", "completed", None)


def test_run_names_never_collide(toy_pm, tmp_path):
    sel = Selection.resolve("sac", "toy_line", toy_pm)
    cfg = sel.compose(overrides=base_overrides(tmp_path, STEPS_PER_ITER, **{"run.name": "same"}))
    dirs = [start_run(sel, cfg, pm=toy_pm).run.dir for _ in range(3)]
    assert [d.name for d in dirs] == ["same", "same-2", "same-3"]


@pytest.mark.parametrize("every, evaluated", [(-1, [False] * 3), (0, [False, False, True]),
                                             (20, [False, True, True]), (1, [True] * 3)])
def test_evaluation_schedule(toy_pm, tmp_path, every, evaluated):
    trainer, final = train(toy_pm, tmp_path, 3 * STEPS_PER_ITER, **{"trainer.eval_every_steps": every,
                                                                    "trainer.eval_episodes": 2})
    assert [r.get("eval/ep_return", "") != "" for r in read_metrics(trainer.run.dir)] == evaluated
    assert ("eval/ep_return" in final) == evaluated[-1]


def test_time_based_checkpoints(toy_pm, tmp_path):
    trainer, _ = train(toy_pm, tmp_path, 3 * STEPS_PER_ITER, **{"trainer.checkpoint_every": 0,
                                                                "trainer.checkpoint_interval_s": 1e9})
    assert [p.name for p in (trainer.run.dir / "checkpoints").glob("ckpt_*.pt")] == ["ckpt_000000000048.pt"]
    trainer, _ = train(toy_pm, tmp_path, 3 * STEPS_PER_ITER, **{"trainer.checkpoint_every": 0,
                                                                "trainer.checkpoint_interval_s": 0,
                                                                "trainer.keep_checkpoints": 5})
    assert len(list((trainer.run.dir / "checkpoints").glob("ckpt_*.pt"))) == 3


def test_keep_one_checkpoint(toy_pm, tmp_path):
    trainer, _ = train(toy_pm, tmp_path, 3 * STEPS_PER_ITER, **{"trainer.keep_checkpoints": 1})
    assert [p.name for p in (trainer.run.dir / "checkpoints").glob("ckpt_*.pt")] == ["ckpt_000000000048.pt"]


def test_tensorboard_events_when_enabled(toy_pm, tmp_path):
    pytest.importorskip("tensorboard")
    trainer, _ = train(toy_pm, tmp_path, STEPS_PER_ITER, **{"run.tensorboard": "true"})
    assert list(trainer.run.dir.glob("events.out.tfevents.*"))


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    run = Run(tmp_path, tensorboard=False)
    first = run.save_checkpoint({"x": torch.ones(2)}, 10)
    before = snapshot(tmp_path)

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr("safenet.runs.os.fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        run.save_checkpoint({"x": torch.zeros(2)}, 20)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(first, "garbage")
    assert snapshot(tmp_path) == before                       # nothing half-written, no temp files
    assert run.latest_checkpoint() == first
    torch.testing.assert_close(load_checkpoint(first)["x"], torch.ones(2))


def test_unreadable_checkpoint_is_a_safenet_error(tmp_path):
    bad = tmp_path / "ckpt_000000000001.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SafenetError, match="is damaged or not a safenet checkpoint"):
        load_checkpoint(bad)


# ------------------------------------------------------------------------------------------------
# resume
# ------------------------------------------------------------------------------------------------

def assert_contiguous(run_dir: Path, total: int) -> None:
    steps = env_steps(run_dir)
    assert steps == list(range(STEPS_PER_ITER, total + 1, STEPS_PER_ITER)), steps
    assert np.all(np.diff(steps) == STEPS_PER_ITER) and len(set(steps)) == len(steps)
    assert [int(r["iteration"]) for r in read_metrics(run_dir)] == list(range(1, len(steps) + 1))


def test_resume_continues_without_gaps_or_duplicates(toy_pm, tmp_path):
    first, _ = train(toy_pm, tmp_path, 2 * STEPS_PER_ITER)
    d = first.run.dir
    rec = Recorder()
    toy_pm.add_plugin(rec, name="recorder")
    trainer = resume_run(d, ["trainer.total_steps=64"], pm=toy_pm)
    assert trainer.run.resumed and trainer.run.dir == d
    assert (trainer.env_steps, trainer.iteration) == (32, 2)
    assert trainer.algo.iteration == 2                             # the algorithm's state came back too
    final = trainer.train()
    assert final["env_steps"] == 64
    assert_contiguous(d, 64)
    assert rec.calls[0] == ("start", True, 64)
    assert [c[1] for c in rec.of("iteration")] == [3, 4]
    # the override is recorded in the run's config
    assert from_yaml_text((d / "config.yaml").read_text(), trainer.sel.algo, trainer.sel.env).trainer.total_steps == 64


def test_resume_after_a_kill_drops_rows_logged_after_the_checkpoint(toy_pm, tmp_path):
    first, _ = train(toy_pm, tmp_path, 2 * STEPS_PER_ITER)
    d = first.run.dir
    rows = read_metrics(d)
    # a killed run logged two more iterations but never checkpointed them
    with open(d / "metrics.csv", "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        for k in (3, 4):
            w.writerow({**rows[-1], "env_steps": 16 * k, "iteration": 999, "rollout/ep_return": -1})
    assert env_steps(d) == [16, 32, 48, 64]
    trainer = resume_run(d, ["trainer.total_steps=80"], pm=toy_pm)
    assert env_steps(d) == [16, 32]                                 # dropped at once
    trainer.train()
    assert_contiguous(d, 80)
    assert all(r["iteration"] != "999" and float(r["rollout/ep_return"]) >= 0 for r in read_metrics(d))


@pytest.mark.parametrize("partial", [
    "48,3,4.1",
    "4",
])
def test_resume_after_a_kill_in_the_middle_of_a_metrics_row(toy_pm, tmp_path, partial):
    first, _ = train(toy_pm, tmp_path, 2 * STEPS_PER_ITER)
    d = first.run.dir
    with open(d / "metrics.csv", "a") as fh:
        fh.write(partial)                                   # no newline: the write was cut short
    resume_run(d, ["trainer.total_steps=64"], pm=toy_pm).train()
    assert_contiguous(d, 64)


def test_resume_after_losing_the_last_checkpoints(toy_pm, tmp_path):
    first, _ = train(toy_pm, tmp_path, 4 * STEPS_PER_ITER, **{"trainer.keep_checkpoints": 10})
    d = first.run.dir
    for s in (48, 64):
        (d / "checkpoints" / f"ckpt_{s:012d}.pt").unlink()          # `latest` now points at a missing file
    trainer = resume_run(d, [], pm=toy_pm)
    assert trainer.env_steps == 32
    assert env_steps(d) == [16, 32]
    trainer.train()
    assert_contiguous(d, 64)


def test_resume_without_any_checkpoint_starts_over(toy_pm, tmp_path):
    first, _ = train(toy_pm, tmp_path, 2 * STEPS_PER_ITER)
    d = first.run.dir
    for p in (d / "checkpoints").iterdir():
        p.unlink()
    trainer = resume_run(d, [], pm=toy_pm)
    assert trainer.env_steps == 0 and env_steps(d) == []
    trainer.train()
    assert_contiguous(d, 32)


def test_resuming_the_same_checkpoint_twice_gives_the_same_run(toy_pm, tmp_path):
    first, _ = train(toy_pm, tmp_path, 2 * STEPS_PER_ITER)
    a = first.run.dir
    b = a.with_name(a.name + "-copy")
    shutil.copytree(a, b)
    for d in (a, b):
        resume_run(d, ["trainer.total_steps=64"], pm=toy_pm).train()
    ra, rb = read_metrics(a), read_metrics(b)
    for key in ("rollout/ep_return", "rollout/ep_cost/uses", "train/lagrange/uses", "train/q_mean"):
        assert [r[key] for r in ra] == [r[key] for r in rb], key


def test_resume_on_a_non_run_directory_writes_nothing(toy_pm, tmp_path):
    d = tmp_path / "notarun"
    (d / "sub").mkdir(parents=True)
    (d / "notes.txt").write_text("hello")
    (d / "config.yaml").write_text("seed: 0\n")                     # half a run dir: no meta.json
    before = snapshot(d)
    with pytest.raises(SafenetError, match="not a safenet run directory"):
        resume_run(d, ["trainer.total_steps=10"], pm=toy_pm)
    assert snapshot(d) == before
    with pytest.raises(SafenetError, match="no such directory"):
        resume_run(tmp_path / "missing", [], pm=toy_pm)
    assert not (tmp_path / "missing").exists()


def test_resume_with_a_bad_override_writes_nothing(toy_pm, tmp_path):
    first, _ = train(toy_pm, tmp_path, STEPS_PER_ITER)
    d = first.run.dir
    before = snapshot(d)
    with pytest.raises(ConfigError, match="trainer.totl_steps"):
        resume_run(d, ["trainer.totl_steps=64"], pm=toy_pm)
    assert snapshot(d) == before


# ------------------------------------------------------------------------------------------------
# signals, evaluation, a throwaway algorithm
# ------------------------------------------------------------------------------------------------

def test_sigint_stops_after_the_iteration_and_checkpoints(toy_pm, tmp_path):
    rec = Recorder(stop_at=2)
    toy_pm.add_plugin(rec, name="recorder")
    previous = signal.getsignal(signal.SIGINT)
    trainer, final = train(toy_pm, tmp_path, 10 * STEPS_PER_ITER, **{"trainer.checkpoint_every": 100})
    assert signal.getsignal(signal.SIGINT) is previous                # handler restored
    assert trainer.env_steps == 32 and final["env_steps"] == 32
    assert rec.calls[-1] == ("end", "interrupted", None)
    assert trainer.run.latest_checkpoint().name == "ckpt_000000000032.pt"
    assert env_steps(trainer.run.dir) == [16, 32]


@dataclass
class ZeroConfig:
    gamma: float = 0.5


class Zero(Algorithm):
    """Always action 0 (never any cost); records what the trainer hands it."""

    rollout_steps = 5

    def __init__(self, spec, cfg, *, seed=0, device="cpu") -> None:
        super().__init__(spec, cfg, seed=seed, device=device)
        self.flags: list[bool] = []
        self.shapes: list[tuple] = []

    def act(self, obs, info, deterministic=False):
        self.flags.append(deterministic)
        return np.zeros(obs.shape[:2], dtype=np.int64), {"seen": obs[..., 0]}

    def update(self, rollout):
        self.shapes.append((rollout.reward.shape, rollout.extras["seen"].shape))
        return {"train/zero": 0.0}


def make_toy_without_finite(cfg, num_envs=1, seed=None):
    game = make_toy(cfg, num_envs=num_envs, seed=seed)
    game.spec = dataclasses.replace(game.spec, tags=frozenset())
    return game


class ZeroPlugin:
    @hookimpl
    def safenet_algorithms(self):
        return [AlgorithmSpec(name="zero", factory=f"{__name__}:Zero", config=ZeroConfig),
                AlgorithmSpec(name="zero-finite", factory=f"{__name__}:Zero", config=ZeroConfig,
                              requires=frozenset({"finite"}))]

    @hookimpl
    def safenet_environments(self):
        return [EnvSpec(name="liar", factory=f"{__name__}:make_toy_without_finite", config=ToyConfig,
                        tags=frozenset({"finite", "discrete"}))]


def test_trainer_with_a_throwaway_algorithm(toy_pm, tmp_path):
    toy_pm.add_plugin(ZeroPlugin(), name="zero")
    trainer, final = train(toy_pm, tmp_path, 30, algo="zero", **{"trainer.eval_every_steps": 1,
                                                                           "trainer.eval_episodes": 3})
    # rollout_steps from the algorithm: 5 steps x 2 copies per iteration, until total_steps is reached
    assert env_steps(trainer.run.dir) == [10, 20, 30]
    assert trainer.algo.shapes == [((5, 2, 4), (5, 2, 4))] * 3
    assert final["rollout/ep_cost/uses"] == 0.0 and final["eval/ep_cost/uses"] == 0.0
    assert final["eval/ep_length"] == 8.0
    assert True in trainer.algo.flags and False in trainer.algo.flags   # eval is deterministic, training not
    assert "train/zero" in read_metrics(trainer.run.dir)[0]


def test_env_with_wrong_declared_tags_is_refused_before_training(toy_pm, tmp_path):
    toy_pm.add_plugin(ZeroPlugin(), name="zero")
    sel = Selection.resolve("zero-finite", "liar", toy_pm)              # declared tags say fine
    cfg = sel.compose(overrides=base_overrides(tmp_path, 10))
    with pytest.raises(IncompatibleError, match="finite"):
        make_game(sel, cfg, 1, 0)


def test_evaluate_counts_exactly_the_requested_episodes():
    class Counting(Zero):
        pass

    game = make_toy(ToyConfig(n_agents=2, episode_length=3), num_envs=2, seed=0)
    algo = Counting(game.spec, ZeroConfig())
    res = evaluate(algo, game, 3, seed=1, deterministic=True, gamma=0.5)
    assert res["eval/ep_length"] == 3.0 and res["eval/ep_cost/uses"] == 0.0
    assert set(algo.flags) == {True}
    # 3 episodes from 2 copies needs two rounds of one episode each
    assert len(algo.flags) == 2 * 3
    assert 0.0 <= res["eval/ep_disc_return"] <= 1 + 0.5 + 0.25


def test_whole_episode_algorithms_refuse_a_rollout_that_cuts_episodes(toy_pm, tmp_path):
    sel = Selection.resolve("sac", "toy_line", toy_pm)          # sac learns from whole episodes
    cfg = sel.compose(overrides=[f"run.dir={tmp_path}", "run.progress=none", "trainer.rollout_steps=5"])
    with pytest.raises(ConfigError, match=r"trainer\.rollout_steps=5.*multiple of the episode length \(8\)"):
        start_run(sel, cfg, pm=toy_pm)
    cfg = sel.compose(overrides=[f"run.dir={tmp_path}", "run.progress=none", "trainer.rollout_steps=16",
                                 "trainer.total_steps=32"])
    assert start_run(sel, cfg, pm=toy_pm).rollout_steps == 16


def test_algorithm_and_game_draw_from_independent_streams():
    from safenet.trainer import derived_seed

    seeds = {derived_seed(s, k) for s in range(5) for k in range(4)}
    assert len(seeds) == 20                                        # no collisions between streams or seeds
    assert derived_seed(3, 1) == derived_seed(3, 1)                # deterministic


def test_a_run_that_cannot_start_leaves_no_directory(toy_pm, tmp_path):
    sel = Selection.resolve("sac", "toy_line", toy_pm)
    cfg = sel.compose(overrides=[f"run.dir={tmp_path / 'runs'}", "run.progress=none", "trainer.rollout_steps=5"])
    with pytest.raises(ConfigError):
        start_run(sel, cfg, pm=toy_pm)
    assert not any((tmp_path / "runs").iterdir())
