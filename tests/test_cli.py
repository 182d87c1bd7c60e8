"""The `safenet` command, in-process (`safenet.cli.main`) plus one run of the installed console script."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from safenet import __version__, hookimpl
from safenet.testing import assert_one_line_error, run_cli

FAST = ["run.progress=none", "run.tensorboard=false", "trainer.n_envs=2", "trainer.total_steps=48",
        "trainer.eval_every_steps=-1", "trainer.checkpoint_every=1"]




def train_run(capsys, tmp_path: Path, *extra: str) -> Path:
    rc, out, err = run_cli(capsys, "train", "--algo", "sac", "--env", "toy_line", f"run.dir={tmp_path / 'runs'}",
                           *FAST, *extra)
    assert rc == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert f"run directory: {run_dir}" in out
    assert "finished at 48 env steps" in out
    return run_dir


# ------------------------------------------------------------------------------------------------
# errors: exit 2, one line, no traceback
# ------------------------------------------------------------------------------------------------

def test_unknown_algorithm(cli_env, capsys):
    rc, out, err = run_cli(capsys, "train", "--algo", "sacc", "--env", "toy_line")
    assert rc == 2
    line = assert_one_line_error(err, "train")
    assert "unknown algorithm 'sacc'" in line and "did you mean 'sac'" in line and "valid choices: " in line
    assert not (cli_env / "runs").exists()


def test_unknown_environment(cli_env, capsys):
    rc, _, err = run_cli(capsys, "config", "--algo", "sac", "--env", "toy-lin")
    assert rc == 2
    line = assert_one_line_error(err, "config")
    assert "unknown environment 'toy-lin'" in line and "did you mean 'toy_line'" in line
    assert "toy_line" in line.split("valid choices: ")[1]


def test_incompatible_pair_is_a_usage_error(cli_env, capsys, monkeypatch):
    from safenet.plugins import get_plugin_manager
    from safenet.specs import EnvSpec
    from safenet.testing import ToyConfig

    class Cont:
        @hookimpl
        def safenet_environments(self):
            return [EnvSpec(name="cont", factory="safenet.testing:make_toy", config=ToyConfig,
                            tags=frozenset({"continuous"}))]

    get_plugin_manager().add_plugin(Cont(), name="cont")
    rc, _, err = run_cli(capsys, "train", "--algo", "sac", "--env", "cont")
    assert rc == 2
    assert "finite" in assert_one_line_error(err, "train")


def test_unknown_preset(cli_env, capsys):
    (cli_env / "configs").mkdir()
    (cli_env / "configs" / "paper_fig2.yaml").write_text("algo: {kappa: 3}\n")
    rc, out, _ = run_cli(capsys, "config", "--algo", "sac", "--env", "toy_line", "--preset", "paper_fig2")
    assert rc == 0 and OmegaConf.create(out).algo.kappa == 3
    rc, _, err = run_cli(capsys, "config", "--algo", "sac", "--env", "toy_line", "--preset", "paper_fig3")
    assert rc == 2
    line = assert_one_line_error(err, "config")
    assert "unknown preset 'paper_fig3'" in line and "paper_fig2" in line


def test_missing_algo_or_env(cli_env, capsys):
    rc, _, err = run_cli(capsys, "train", "--env", "toy_line")
    assert rc == 2 and "--algo and --env are required" in assert_one_line_error(err, "train")


def test_bad_config_key_and_value(cli_env, capsys):
    rc, _, err = run_cli(capsys, "config", "--algo", "sac", "--env", "toy_line", "algo.kapa=2")
    assert rc == 2
    line = assert_one_line_error(err, "config")
    assert "'algo.kapa'" in line and "'algo.kappa'" in line
    rc, _, err = run_cli(capsys, "train", "--algo", "sac", "--env", "toy_line", "trainer.n_envs=abc")
    assert rc == 2 and "'trainer.n_envs'" in assert_one_line_error(err, "train")
    rc, _, err = run_cli(capsys, "config", "--algo", "sac", "--env", "toy_line", "trainer.n_envs")
    assert rc == 2 and "key=value" in assert_one_line_error(err, "config")
    assert not (cli_env / "runs").exists()


def test_resume_of_a_non_run(cli_env, capsys):
    rc, _, err = run_cli(capsys, "train", "--resume", "/not/a/run")
    assert rc == 2 and "/not/a/run" in assert_one_line_error(err, "train")
    (cli_env / "plain").mkdir()
    rc, _, err = run_cli(capsys, "train", "--resume", str(cli_env / "plain"))
    assert rc == 2 and "not a safenet run directory" in assert_one_line_error(err, "train")
    assert list((cli_env / "plain").iterdir()) == []


def test_eval_and_plot_of_a_non_run(cli_env, capsys):
    rc, _, err = run_cli(capsys, "eval", str(cli_env))
    assert rc == 2 and "not a safenet run directory" in assert_one_line_error(err, "eval")
    rc, _, err = run_cli(capsys, "plot", str(cli_env), "-o", "x.png")
    assert rc == 2 and assert_one_line_error(err, "plot")
    assert not (cli_env / "x.png").exists()


def test_no_command_and_version(cli_env, capsys):
    rc, out, _ = run_cli(capsys)
    assert rc == 2 and "COMMAND" in out
    rc, out, _ = run_cli(capsys, "--version")
    assert rc == 0 and out.strip() == f"safenet {__version__}"


# ------------------------------------------------------------------------------------------------
# commands that work
# ------------------------------------------------------------------------------------------------

def test_config_prints_resolved_yaml(cli_env, capsys):
    rc, out, err = run_cli(capsys, "config", "--algo", "sac", "--env", "toy_line", "algo.kappa=2")
    assert rc == 0, err
    assert "kappa: 2" in out
    cfg = OmegaConf.create(out)
    assert cfg.algo.kappa == 2 and cfg.env.n_agents == 4 and cfg.trainer.eval_deterministic is False
    assert set(cfg) == {"seed", "algo", "env", "trainer", "run"}


def test_config_with_a_file(cli_env, capsys):
    (cli_env / "mine.yaml").write_text("algo:\n  gamma: 0.5\ntrainer:\n  n_envs: 3\n")
    rc, out, _ = run_cli(capsys, "config", "--algo", "sac", "--env", "toy_line", "--config", "mine.yaml",
                         "trainer.n_envs=5")
    assert rc == 0
    cfg = OmegaConf.create(out)
    assert cfg.algo.gamma == 0.5 and cfg.trainer.n_envs == 5


def test_train_eval_plot(cli_env, capsys):
    run_dir = train_run(capsys, cli_env)
    assert [p.name for p in sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))][-1] == "ckpt_000000000048.pt"

    rc, out, err = run_cli(capsys, "eval", str(run_dir), "--episodes", "4")
    assert rc == 0, err
    assert "4 stochastic episodes" in out and "ckpt_000000000048.pt" in out
    assert "episode reward" in out and "episode cost uses" in out and "within limit" in out

    rc, out, _ = run_cli(capsys, "eval", str(run_dir), "--episodes", "3", "--deterministic", "--json")
    assert rc == 0
    res = json.loads(out)
    assert res["env_steps"] == 48 and res["eval/ep_length"] == 8.0
    assert 0 <= res["eval/ep_cost/uses"] <= 8

    rc, _, err = run_cli(capsys, "eval", str(run_dir), "--episodes", "0")
    assert rc == 2 and "--episodes" in assert_one_line_error(err, "eval")

    rc, out, _ = run_cli(capsys, "plot", str(run_dir), "-o", str(cli_env / "x.png"))
    assert rc == 0 and "x.png" in out
    assert (cli_env / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_resume(cli_env, capsys):
    run_dir = train_run(capsys, cli_env)
    rc, out, err = run_cli(capsys, "train", "--resume", str(run_dir), "trainer.total_steps=80")
    assert rc == 0, err
    assert "finished at 80 env steps" in out
    with open(run_dir / "metrics.csv") as fh:
        steps = [int(line.split(",")[0]) for line in fh.read().splitlines()[1:]]
    assert steps == [16, 32, 48, 64, 80]
    rc, _, err = run_cli(capsys, "train", "--resume", str(run_dir), "--algo", "sac")
    assert rc == 2 and "--resume" in assert_one_line_error(err, "train")


def test_plugins_json(cli_env, capsys):
    rc, out, _ = run_cli(capsys, "plugins", "--json")
    assert rc == 0
    listing = {p["name"]: p for p in json.loads(out)}
    sac = listing["safenet_scalable_ac"]
    assert sac["status"] == "active" and sac["algorithms"] == ["sac"]
    assert sac["distribution"] == "safenet-scalable-ac" and sac["error"] is None
    assert listing["safenet.testing"]["environments"] == ["toy_line"]


def test_plugins_table_shows_a_failed_plugin(cli_env, capsys, monkeypatch):
    monkeypatch.setenv("SAFENET_PLUGINS", "safenet.testing,no_such_plugin_mod")
    with pytest.warns(UserWarning):
        rc, out, _ = run_cli(capsys, "plugins", "--traceback")
    assert rc == 0
    assert "safenet_scalable_ac" in out and "no_such_plugin_mod" in out and "failed" in out
    assert "ModuleNotFoundError" in out


# ------------------------------------------------------------------------------------------------
# the installed console script
# ------------------------------------------------------------------------------------------------

def test_console_script(tmp_path):
    exe = Path(sys.executable).with_name("safenet")
    if not exe.exists():
        found = shutil.which("safenet")
        if found is None:
            pytest.skip("the safenet console script is not installed")
        exe = Path(found)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFENET_")}
    env["SAFENET_PLUGINS"] = "safenet.testing"
    bad = subprocess.run([str(exe), "train", "--algo", "sacc", "--env", "toy_line"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    assert "did you mean 'sac'" in bad.stderr
    good = subprocess.run([str(exe), "config", "--algo", "sac", "--env", "toy_line", "algo.kappa=2"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    assert OmegaConf.create(good.stdout).algo.kappa == 2


def test_doctor_passes_on_a_healthy_installation(cli_env, capsys):
    rc, out, err = run_cli(capsys, "doctor", "--build")
    assert rc == 0, out + err
    assert out.strip().endswith("ok") and "pairs composed:" in out


def test_doctor_reports_a_default_config_that_does_not_compose(cli_env, capsys, monkeypatch):
    (cli_env / "bad_defaults_plugin.py").write_text(
        "from dataclasses import dataclass\n"
        "import safenet\n"
        "from safenet import EnvSpec\n"
        "@dataclass\n"
        "class BadConfig:\n"
        "    n_agents: int = 0\n"
        "    def __post_init__(self):\n"
        "        if self.n_agents < 1:\n"
        "            raise ValueError(f'env.n_agents must be >= 1, got {self.n_agents}')\n"
        "@safenet.hookimpl\n"
        "def safenet_environments():\n"
        "    return [EnvSpec(name='bad_defaults', factory='safenet.testing:make_toy', config=BadConfig,\n"
        "                    tags={'finite', 'discrete'})]\n")
    monkeypatch.syspath_prepend(str(cli_env))
    monkeypatch.setenv("SAFENET_PLUGINS", "safenet.testing,bad_defaults_plugin")
    rc, out, err = run_cli(capsys, "doctor")
    assert rc == 1
    problems = [line for line in out.splitlines() if "problem:" in line]
    assert len(problems) == 1, out                     # once, listing every algorithm it fails with
    assert "sac on bad_defaults" in problems[0] and "env.n_agents must be >= 1" in problems[0]
