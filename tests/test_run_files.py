"""Nothing lost: damaged or mismatched run files are one-line errors naming the file and what to do;
nan/inf stops training within the iteration and keeps the last good checkpoint; half-written files of
a killed run are removed on resume."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from safenet.testing import assert_one_line_error, run_cli

FAST = ["run.progress=none", "run.tensorboard=false", "trainer.n_envs=2", "trainer.eval_every_steps=-1",
        "trainer.checkpoint_every=1", "trainer.keep_checkpoints=5"]


def train(capsys, root: Path, *extra: str, algo: str = "sac", name: str = "r", steps: int = 48) -> Path:
    rc, _, err = run_cli(capsys, "train", "--algo", algo, "--env", "toy_line", f"run.dir={root}", f"run.name={name}",
                         f"trainer.total_steps={steps}", *FAST, *extra)
    assert rc == 0, err
    return root / name


def error_of(capsys, *argv: str) -> str:
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 2, err
    assert "Traceback" not in err
    return assert_one_line_error(err, argv[0])


@pytest.fixture
def run_dir(cli_env, capsys) -> Path:
    return train(capsys, cli_env / "runs")


def both(capsys, run_dir: Path) -> list[str]:
    """The errors of `train --resume` and `eval` on the run."""
    return [error_of(capsys, "train", "--resume", str(run_dir), "trainer.total_steps=96"),
            error_of(capsys, "eval", str(run_dir), "--episodes", "2")]


@pytest.mark.parametrize("content", ["algo: {gamma: [1, 2\n", "\x00\x01\x02garbage", "- just\n- a list\n",
                                     "trainer:\n  total_steps: -5\n", "algo:\n  no_such_key: 1\n"])
def test_damaged_config_yaml(run_dir, capsys, content):
    (run_dir / "config.yaml").write_text(content)
    for line in both(capsys, run_dir):
        assert "config.yaml" in line and "restore it" in line and "config_yaml" in line


@pytest.mark.parametrize("content", ['{"algo": "sac", "env": "toy', "", '{"env": "toy_line"}', "[1, 2]"])
def test_damaged_meta_json(run_dir, capsys, content):
    (run_dir / "meta.json").write_text(content)
    for line in both(capsys, run_dir):
        assert "meta.json" in line and ("damaged" in line or "does not name" in line)


@pytest.mark.parametrize("content", [b"env_steps,x\nabc,1\n", b"\xff\xfe\x00garbage\n", b"a,b\n1,2\n"])
def test_damaged_metrics_csv(run_dir, capsys, content):
    (run_dir / "metrics.csv").write_bytes(content)
    line = error_of(capsys, "train", "--resume", str(run_dir), "trainer.total_steps=96")
    assert "metrics.csv" in line and "move it aside" in line
    line = error_of(capsys, "plot", str(run_dir), "-o", str(run_dir.parent / "c.png"))
    assert "metrics.csv" in line


def newest(run_dir: Path) -> Path:
    return sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))[-1]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_checkpoint_names_it_and_the_older_one(run_dir, capsys, damage):
    ckpt = newest(run_dir)
    data = ckpt.read_bytes()
    ckpt.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00" * 100, "empty": b""}[damage])
    for line in both(capsys, run_dir):
        assert ckpt.name in line and "damaged" in line and "ckpt_000000000032.pt" in line
    # doing what the message says resumes from the older checkpoint
    ckpt.unlink()
    (run_dir / "checkpoints" / "latest").unlink()
    rc, out, err = run_cli(capsys, "train", "--resume", str(run_dir), "trainer.total_steps=64")
    assert rc == 0, err
    assert "continuing from ckpt_000000000032.pt" in out


def test_checkpoint_of_another_algorithm_or_environment(cli_env, capsys):
    a = train(capsys, cli_env / "runs", name="a")
    b = train(capsys, cli_env / "runs", "env.n_agents=6", name="b")
    other = newest(b)
    line = error_of(capsys, "eval", str(a), "--checkpoint", str(other))
    assert other.name in line and "env.n_agents=6" in line and "env.n_agents=4" in line
    state = torch.load(newest(a), weights_only=True)
    state["algo_name"] = "mappo-l"
    torch.save(state, cli_env / "foreign.pt")
    line = error_of(capsys, "eval", str(a), "--checkpoint", str(cli_env / "foreign.pt"))
    assert "foreign.pt" in line and "'mappo-l'" in line and "'sac'" in line
    torch.save({"weights": torch.ones(2)}, cli_env / "plain.pt")
    line = error_of(capsys, "eval", str(a), "--checkpoint", str(cli_env / "plain.pt"))
    assert "plain.pt" in line and "not a safenet training checkpoint" in line


def test_run_directory_without_checkpoints(run_dir, capsys):
    for p in (run_dir / "checkpoints").iterdir():
        p.unlink()
    line = error_of(capsys, "eval", str(run_dir))
    assert "no checkpoint" in line
    rc, out, err = run_cli(capsys, "train", "--resume", str(run_dir), "trainer.total_steps=32")
    assert rc == 0, err
    assert "no checkpoint yet; starting from the beginning" in out


def test_a_resume_with_overrides_is_recorded_in_meta_json(run_dir, capsys):
    """config.yaml keeps only the latest settings; meta.json says where they changed and how."""
    rc, _, err = run_cli(capsys, "train", "--resume", str(run_dir), "trainer.total_steps=96", "algo.actor_lr=2.5")
    assert rc == 0, err
    resumes = json.loads((run_dir / "meta.json").read_text())["resumes"]
    assert [(r["env_steps"], r["overrides"]) for r in resumes] == [(48, ["trainer.total_steps=96", "algo.actor_lr=2.5"])]
    assert "actor_lr: 2.5" in (run_dir / "config.yaml").read_text()
    rc, _, err = run_cli(capsys, "train", "--resume", str(run_dir))            # no overrides: nothing to record
    assert rc == 0, err
    assert len(json.loads((run_dir / "meta.json").read_text())["resumes"]) == 1


def test_leftover_temporary_files_are_removed_on_resume(run_dir, capsys):
    leftovers = [run_dir / "checkpoints" / ".ckpt_000000000064.pt.abc123.tmp", run_dir / ".metrics.csv.x1.tmp"]
    for p in leftovers:
        p.write_bytes(b"half")
    rc, out, err = run_cli(capsys, "train", "--resume", str(run_dir), "trainer.total_steps=64")
    assert rc == 0, err
    assert not any(p.exists() for p in leftovers)
    assert "removed checkpoints/.ckpt_000000000064.pt.abc123.tmp" in out


def test_nan_loss_from_an_overflowing_learning_rate(cli_env, capsys):
    """A learning rate that overflows makes the first update's policy loss nan: the run stops in that
    iteration naming the quantity, writes no checkpoint, and a resume with a sane rate trains."""
    root = cli_env / "runs"
    line = error_of(capsys, "train", "--algo", "ippo", "--env", "toy_line", f"run.dir={root}", "run.name=n",
                    "trainer.total_steps=512", *FAST, "algo.actor_lr=1e30")
    assert "training stopped at iteration 1" in line and "train/loss_policy=nan" in line
    assert "no checkpoint was written yet" in line and f"--resume {root / 'n'}" in line
    assert not list((root / "n" / "checkpoints").glob("ckpt_*.pt"))
    rc, out, err = run_cli(capsys, "train", "--resume", str(root / "n"), "algo.actor_lr=5e-4")
    assert rc == 0, err
    assert "finished at 512 env steps" in out


def test_nan_observation_stops_the_run_and_resume_continues_from_the_last_good_checkpoint(cli_env, capsys,
                                                                                          monkeypatch):
    """The game returns a nan observation after 40 steps of its copies: the run stops in that
    iteration naming the agent and env step, keeps the checkpoints before it, and resumes from them."""
    import numpy as np

    from safenet.testing import ToyLineGame

    step, calls = ToyLineGame.step, {"n": 0}

    def poisoned(self, actions):
        obs, *rest = step(self, actions)
        calls["n"] += 1
        if calls["n"] == 20:                       # 2 copies: env steps 39-40
            obs = obs.copy()
            obs[1, 2, 0] = np.nan
        return (obs, *rest)

    monkeypatch.setattr(ToyLineGame, "step", poisoned)
    root = cli_env / "runs"
    line = error_of(capsys, "train", "--algo", "sac", "--env", "toy_line", f"run.dir={root}", "run.name=o",
                    "trainer.total_steps=96", *FAST)
    assert "non-finite observation nan of agent agent_2 in game copy 1 at env step 40" in line
    assert "training stopped at iteration 3" in line and "last good checkpoint ckpt_000000000032.pt" in line
    assert [p.name for p in sorted((root / "o" / "checkpoints").glob("ckpt_*.pt"))] == [
        "ckpt_000000000016.pt", "ckpt_000000000032.pt"]
    rc, out, err = run_cli(capsys, "train", "--resume", str(root / "o"))
    assert rc == 0, err
    assert "continuing from ckpt_000000000032.pt" in out and "finished at 96 env steps" in out


def test_nan_in_the_algorithm_state_never_reaches_a_checkpoint(cli_env, capsys):
    """A critic learning rate that overflows the critic's weights (its loss is logged one iteration
    late) is caught in the state check before the checkpoint, naming the tensor and the agent."""
    run_root = cli_env / "runs"
    rc, _, err = run_cli(capsys, "train", "--algo", "ippo", "--env", "toy_line", f"run.dir={run_root}", "run.name=c",
                         "trainer.total_steps=200", *FAST, "algo.critic_lr=1e38")
    assert rc == 2 and "Traceback" not in err
    line = assert_one_line_error(err, "train")
    assert "non-finite" in line and "algo.critic" in line and "of agent agent_" in line
    assert not list((run_root / "c" / "checkpoints").glob("ckpt_*.pt"))


def test_nan_observation_names_agent_and_env_step():
    from safenet.finite import in_rollout
    from safenet.rollout import Rollout
    import numpy as np

    T, B, n = 4, 3, 2
    z = np.zeros
    r = Rollout(obs=z((T, B, n, 2)), actions=z((T, B, n, 1)), reward=z((T, B, n)), cost=z((T, B, n, 1)),
                terminated=z((T, B), bool), truncated=z((T, B), bool), next_obs=z((T, B, n, 2)))
    assert in_rollout(r, ("a", "b"), 100) is None
    r.obs[2, 1, 1, 0] = np.inf
    assert in_rollout(r, ("a", "b"), 100) == "observation inf of agent b in game copy 1 at env step 106 (rollout step 2)"
