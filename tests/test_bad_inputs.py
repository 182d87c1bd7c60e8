"""Every bad input a user can give ``safenet train/eval/plot`` ends in one line, exit status 2, naming the key.

A table of wrong values through the real CLI entry point (:func:`safenet.cli.main`, in-process, with the
installed plugins), across the core's ``seed``/``trainer.*``/``run.*`` keys, every algorithm plugin's
``algo.*`` keys and every environment plugin's ``env.*`` keys, plus the command-line options of
``eval`` and ``plot`` and output paths. A few cases also run as true subprocesses of the console script.

Each case asserts: exit status 2, exactly one ``safenet <command>: error: ...`` line on stderr (so no
traceback), the full key (or option) named, and the bad value quoted. Cases that slip through would
start a short training run (``FAST``) and fail on the exit status.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import safenet.plugins as plugins_mod
from safenet.testing import run_cli

FAST = ["run.progress=none", "run.tensorboard=false", "trainer.n_envs=2", "trainer.total_steps=24",
        "trainer.eval_every_steps=-1", "trainer.checkpoint_every=1"]

#: a cheap environment each algorithm can run on
PAIR = {
    "ippo": "grid_wireless_3x3", "mappo": "grid_wireless_3x3", "happo": "grid_wireless_3x3",
    "mappo-l": "grid_wireless_3x3", "dec-mappo-l": "grid_wireless_3x3", "sac": "grid_wireless_3x3",
    "dppo": "cacc_catchup", "dmpo": "cacc_catchup", "cppo": "cacc_catchup", "dadc": "multi_access_broadcast",
}
#: a cheap algorithm for each environment's keys
ENV_ALGO = {"cacc_catchup": "ippo", "grid_wireless_3x3": "ippo", "demand_response": "dadc",
            "multi_access_broadcast": "dadc", "safe_ant_8x1": "ippo", "safety_swimmer_2x1_velocity": "ippo",
            "safe_manyagent_ant_2x3": "ippo", "atsc_grid_5x5": "ippo"}


def core(override: str, key: str | None = None, value: str | None = None):
    k, v = override.split("=", 1)
    return pytest.param(["train", "--algo", "ippo", "--env", "grid_wireless_3x3", override], key or k,
                        v if value is None else value, id=override)


def algo(name: str, override: str, value: str | None = None):
    k, v = override.split("=", 1)
    return pytest.param(["train", "--algo", name, "--env", PAIR[name], f"algo.{override}"], f"algo.{k}",
                        v if value is None else value, id=f"{name}:{override}")


def env(name: str, override: str, value: str | None = None):
    k, v = override.split("=", 1)
    return pytest.param(["train", "--algo", ENV_ALGO[name], "--env", name, f"env.{override}"], f"env.{k}",
                        v if value is None else value, id=f"{name}:{override}")


CORE = [
    # trainer.*: ranges, types, empty values, lists, nan
    core("trainer.total_steps=0"), core("trainer.total_steps=-5"), core("trainer.total_steps=abc"),
    core("trainer.total_steps=1.5"), core("trainer.total_steps="), core("trainer.total_steps=[]"),
    core("trainer.total_steps=null"), core("trainer.n_envs=0"), core("trainer.n_envs=-1"),
    core("trainer.rollout_steps=-1"), core("trainer.eval_every_steps=-2"), core("trainer.eval_episodes=0"),
    core("trainer.eval_deterministic=maybe"), core("trainer.checkpoint_every=-1"),
    core("trainer.checkpoint_interval_s=-1"), core("trainer.checkpoint_interval_s=nan"),
    core("trainer.checkpoint_interval_s=inf"), core("trainer.keep_checkpoints=0"),
    core("trainer.device=gpu"), core("trainer.device=cpu:0"), core("trainer.device=cuda:"),
    core("trainer.device=tpu"), core("trainer.cpus=-1"), core("trainer.torch_threads=-3"),
    core("trainer=5", "trainer"), core("trainer.total_steps={a: 1}", value="a"),
    # run.*
    core("run.name=../escaped"), core("run.name=/tmp/elsewhere"), core("run.name=a/b"), core("run.name=.."),
    core("run.progress=loud"), core("run.log_interval_s=0"), core("run.log_interval_s=-1"),
    core("run.log_interval_s=nan"), core("run.tensorboard=maybe"), core("run=3", "run"),
    # seed
    core("seed=-1"), core("seed=4294967296"), core("seed=1.5"), core("seed=abc"), core("seed=nan"),
    core("seed=[]"), core("seed=null"),
    # whole sections replaced by a scalar / unknown keys
    core("algo=3", "algo"), core("env=x", "env"), core("algo.gama=0.9", "algo.gama", "gama"),
]

ALGO = [
    # PPO family (ippo, mappo, happo, mappo-l, dec-mappo-l)
    algo("ippo", "gamma=1"), algo("ippo", "gamma=-0.1"), algo("ippo", "gamma=nan"), algo("ippo", "gae_lambda=1.5"),
    algo("ippo", "clip=0"), algo("ippo", "clip=inf"), algo("ippo", "epochs=0"), algo("ippo", "minibatches=0"),
    algo("ippo", "actor_lr=0"), algo("ippo", "actor_lr=nan"), algo("ippo", "actor_lr=inf"),
    algo("ippo", "actor_lr=abc"), algo("mappo", "critic_lr=-1e-3", "-0.001"), algo("mappo", "adam_eps=0"),
    algo("mappo", "entropy_coef=-1"), algo("mappo", "max_grad_norm=-1"), algo("mappo", "hidden=[]"),
    algo("mappo", "hidden=[0]", "0"), algo("mappo", "hidden=64"), algo("mappo", "hidden=[a]", "a"),
    algo("happo", "activation=sigmoid"), algo("happo", "init_log_std=nan"), algo("happo", "huber_delta=-1"),
    algo("happo", "reward=bogus"), algo("happo", "policy_input=everything"), algo("happo", "critic_input=x"),
    algo("happo", "rollout_steps=-1"), algo("happo", "reward_scale=0"),
    algo("mappo-l", "lagrange.lr=-1"), algo("mappo-l", "lagrange.lr=nan"), algo("mappo-l", "lagrange.method=foo"),
    algo("mappo-l", "lagrange.max_value=0"), algo("mappo-l", "lagrange.init=-1"), algo("mappo-l", "lagrange.kp=-1"),
    algo("mappo-l", "lagrange.ki=nan"), algo("mappo-l", "lagrange.kd=inf"), algo("mappo-l", "penalty_units=x"),
    algo("mappo-l", "lagrange=3"), algo("mappo-l", "lagrange.enabled=perhaps"),
    algo("dec-mappo-l", "kappa=-1"), algo("dec-mappo-l", "kappa=1.5"), algo("dec-mappo-l", "kappa=two"),
    # DMPO family (dppo, dmpo, cppo)
    algo("dppo", "kappa=-1"), algo("dppo", "policy_kappa=-1"), algo("dppo", "advantage=x"), algo("dppo", "gamma=1"),
    algo("dppo", "clip=1"), algo("dppo", "target_kl=-1"), algo("dppo", "lr_policy=0"), algo("dppo", "lr_value=nan"),
    algo("dppo", "hidden=[]"), algo("dppo", "reward_clip=-1"), algo("dppo", "reward_scale=0"),
    algo("dppo", "epochs=0"), algo("dppo", "lagrange.method=x"), algo("dppo", "max_grad_norm=-1"),
    algo("dmpo", "model_kappa=-1"), algo("dmpo", "model_holdout=0.5"), algo("dmpo", "model_usage=2"),
    algo("dmpo", "rollout_length=0"), algo("dmpo", "lr_model=nan"), algo("dmpo", "warmup_steps=-1"),
    algo("dmpo", "model_hidden=[-1]", "-1"), algo("cppo", "gae_lambda=-0.5"), algo("cppo", "entropy_coef=-0.1"),
    # Scalable Actor Critic
    algo("sac", "kappa=-1"), algo("sac", "gamma=1"), algo("sac", "critic_h=-1"), algo("sac", "critic_t0=-1"),
    algo("sac", "critic_schedule=x"), algo("sac", "actor_lr=0"), algo("sac", "actor_lr=nan"),
    algo("sac", "actor_decay=x"), algo("sac", "actor_decay_restart=-1"), algo("sac", "baseline=x"),
    algo("sac", "baseline_rate=2"), algo("sac", "critic_min_step=-1"), algo("sac", "lagrange.lr=nan"),
    # DADC
    algo("dadc", "ais=x"), algo("dadc", "ais_dim=0"), algo("dadc", "gamma=1"), algo("dadc", "lr_ais=0"),
    algo("dadc", "ais_lambda=2"), algo("dadc", "hidden=[]"), algo("dadc", "mmd_bandwidth=0"),
    algo("dadc", "ppo_clip=-1"), algo("dadc", "lr_decay_updates=0"), algo("dadc", "update=x"),
    algo("dadc", "lr_actor=inf"), algo("dadc", "init_log_std=nan"),
]

ENV = [
    env("cacc_catchup", "scenario=x"), env("cacc_catchup", "n_vehicles=0"), env("cacc_catchup", "dt=0"),
    env("cacc_catchup", "dt=nan"), env("cacc_catchup", "episode_steps=0"), env("cacc_catchup", "h_go=1"),
    env("cacc_catchup", "v_star=100"), env("cacc_catchup", "slowdown_steps=0"), env("cacc_catchup", "cost_limit=-1"),
    env("cacc_catchup", "cost_limit=nan"), env("cacc_catchup", "safe_headway=-1"),
    env("cacc_catchup", "soft_safety_term=maybe"), env("cacc_catchup", "collision_penalty=inf"),
    env("grid_wireless_3x3", "rows=1"), env("grid_wireless_3x3", "deadline=40"),
    env("grid_wireless_3x3", "arrival_prob=2"), env("grid_wireless_3x3", "success_probs=[0.5]", "1 values"),
    env("grid_wireless_3x3", "success_probs=2"), env("grid_wireless_3x3", "energy_budget=-1"),
    env("grid_wireless_3x3", "episode_length=0"), env("grid_wireless_3x3", "energy_budget=nan"),
    env("demand_response", "n_devices=0"), env("demand_response", "target_on=0"),
    env("demand_response", "eps_off=1.5"), env("demand_response", "cost_on=-1"),
    env("multi_access_broadcast", "channel_timing=x"), env("multi_access_broadcast", "alpha0=2"),
    env("multi_access_broadcast", "episode_length=0"), env("multi_access_broadcast", "tx_cost=nan"),
    env("safe_ant_8x1", "partition=9x9"), env("safe_ant_8x1", "agent_obsk=-1"), env("safe_ant_8x1", "cost_limit=-1"),
    env("safe_ant_8x1", "cost_limit=nan"), env("safe_ant_8x1", "episode_length=0"), env("safe_ant_8x1", "threads=-1"),
    env("safe_ant_8x1", "render_width=1"), env("safe_ant_8x1", "family=x"),
    env("safe_ant_8x1", "reset_noise_scale=inf"), env("safety_swimmer_2x1_velocity", "velocity_threshold=-1"),
    env("safe_manyagent_ant_2x3", "partition=2y3"),
    env("atsc_grid_5x5", "rows=0"), env("atsc_grid_5x5", "yellow_s=5"), env("atsc_grid_5x5", "episode_s=7"),
    env("atsc_grid_5x5", "edge_length=10"), env("atsc_grid_5x5", "spill_back_fraction=0"),
    env("atsc_grid_5x5", "demand_scale=-1"), env("atsc_grid_5x5", "cost_limit=inf"),
]


_VARS = ("SAFENET_PLUGINS", "SAFENET_STRICT_PLUGINS", "SAFENET_DISABLE_PLUGIN_AUTOLOAD", "SAFENET_DISABLE_PLUGINS")


@pytest.fixture(scope="module")
def installed_pm():
    """One manager of the installed plugins for the whole table (loading entry points is the slow part)."""
    with pytest.MonkeyPatch.context() as mp:
        for var in _VARS:
            mp.delenv(var, raising=False)
        return plugins_mod.PluginManager()


@pytest.fixture
def real_plugins(monkeypatch, tmp_path, installed_pm):
    """The installed plugins, the working folder a temp folder."""
    for var in _VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(plugins_mod, "_MANAGER", installed_pm)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def assert_usage_error(rc: int, err: str, command: str, *words: str) -> str:
    lines = err.strip().splitlines()
    assert rc == 2, f"exit {rc}; stderr:\n{err}"
    assert len(lines) == 1 and lines[0].startswith(f"safenet {command}: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w.lower() in lines[0].lower(), f"{w!r} not named in: {lines[0]}"
    return lines[0]


@pytest.mark.parametrize("argv, key, value", CORE + ALGO + ENV)
def test_bad_config_value(real_plugins, capsys, argv, key, value):
    rc, _, err = run_cli(capsys, *argv[:5], f"run.dir={real_plugins / 'runs'}", *FAST, *argv[5:])
    assert_usage_error(rc, err, argv[0], key, value)
    assert not (real_plugins / "runs").exists() or not any((real_plugins / "runs").iterdir())


# ------------------------------------------------------------------------------------------------
# options of eval / plot / train and output paths
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, installed_pm) -> Path:
    """One short run of ippo on grid_wireless_3x3 (eval and plot read it)."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plugins_mod, "_MANAGER", installed_pm)
        from safenet.cli import main

        assert main(["train", "--algo", "ippo", "--env", "grid_wireless_3x3", f"run.dir={root}", *FAST]) == 0
    (run_dir,) = root.iterdir()
    return run_dir


A_FILE = "{tmp}/a_file"      # the test writes a plain file there first

OPTIONS = [
    pytest.param(["eval", "{run}", "--episodes", "0"], ["--episodes", "0"], id="eval--episodes=0"),
    pytest.param(["eval", "{run}", "--episodes", "-3"], ["--episodes", "-3"], id="eval--episodes=-3"),
    pytest.param(["eval", "{run}", "--seed", "-1"], ["--seed", "-1"], id="eval--seed=-1"),
    pytest.param(["eval", "{run}", "--seed", "4294967296"], ["--seed", "4294967296"], id="eval--seed=2**32"),
    pytest.param(["eval", "{run}", "--device", "gpu"], ["--device", "gpu"], id="eval--device=gpu"),
    pytest.param(["eval", "{run}", "--checkpoint", "{tmp}/nope.pt"], ["--checkpoint", "nope.pt"],
                 id="eval--checkpoint=missing"),
    pytest.param(["eval", "{run}", "--video", "{tmp}/v.txt"], ["--video", "v.txt", ".gif"], id="eval--video=.txt"),
    pytest.param(["eval", "{run}", "--video", "{tmp}/v.gif", "--video-steps", "0"], ["--video-steps", "0"],
                 id="eval--video-steps=0"),
    pytest.param(["eval", "{run}", "--video", A_FILE + "/v.gif"], ["--video", "a_file", "not a folder"],
                 id="eval--video-under-a-file"),
    pytest.param(["eval", "{tmp}/not_a_run"], ["not_a_run"], id="eval-not-a-run"),
    pytest.param(["plot", "{run}", "-o", "{tmp}/curves.txt"], ["-o", "curves.txt", ".png"], id="plot-o=.txt"),
    pytest.param(["plot", "{run}", "-o", "{tmp}/curves"], ["-o", "curves", "(none)"], id="plot-o-no-suffix"),
    pytest.param(["plot", "{run}", "-o", "{tmp}"], ["-o", "is a folder"], id="plot-o=a-folder"),
    pytest.param(["plot", "{run}", "-o", A_FILE + "/c.png"], ["-o", "a_file", "not a folder"],
                 id="plot-o-under-a-file"),
    pytest.param(["plot", "{run}", "-o", "/sys/safenet-test/c.png"], ["-o", "/sys/safenet-test", "cannot create"],
                 id="plot-o-unwritable"),
    pytest.param(["plot", "{tmp}/not_a_run"], ["not_a_run"], id="plot-not-a-run"),
    pytest.param(["train", "--algo", "ippo", "--env", "grid_wireless_3x3", *FAST, f"run.dir={A_FILE}"],
                 ["run.dir", "a_file", "not a folder"], id="train-run.dir=a-file"),
    pytest.param(["train", "--algo", "ippo", "--env", "grid_wireless_3x3", *FAST, f"run.dir={A_FILE}/sub"],
                 ["run.dir", "a_file", "not a folder"], id="train-run.dir-under-a-file"),
    pytest.param(["train", "--algo", "ippo", "--env", "grid_wireless_3x3", *FAST, "run.dir=/sys/safenet-test"],
                 ["run.dir", "/sys/safenet-test", "cannot create"], id="train-run.dir-unwritable"),
    pytest.param(["train", "--algo", "ippo", "--env", "grid_wireless_3x3", "--config", "{tmp}/nope.yaml"],
                 ["nope.yaml", "not found"], id="train--config=missing"),
    pytest.param(["train", "--algo", "ippo", "--env", "grid_wireless_3x3", "--preset", "no_such_preset"],
                 ["no_such_preset"], id="train--preset=unknown"),
    pytest.param(["train", "--algo", "ippo", "--env", "grid_wireless_3x3", "trainer.n_envs"],
                 ["trainer.n_envs", "key=value"], id="train-override-without-="),
    pytest.param(["train", "--resume", "{tmp}/no_such_run"], ["--resume", "no_such_run"], id="train--resume=missing"),
    pytest.param(["train", "--algo", "ipo", "--env", "grid_wireless_3x3"], ["ipo", "ippo"], id="train--algo=typo"),
    pytest.param(["train", "--algo", "ippo", "--env", "grid_wireless_9"], ["grid_wireless_9"], id="train--env=typo"),
]


@pytest.mark.parametrize("argv, words", OPTIONS)
def test_bad_option_or_path(real_plugins, trained_run, capsys, argv, words):
    (real_plugins / "a_file").write_text("not a folder\n")
    fill = {"run": str(trained_run), "tmp": str(real_plugins)}
    rc, _, err = run_cli(capsys, *[a.format(**fill) for a in argv])
    assert_usage_error(rc, err, argv[0], *[w.format(**fill) for w in words])


def test_yaml_boolean_words_stay_strings_on_the_command_line(real_plugins, capsys):
    rc, out, err = run_cli(capsys, "config", "--algo", "ippo", "--env", "grid_wireless_3x3", "run.progress=none",
                           "run.name=off", "trainer.device=cpu")
    assert rc == 0, err
    assert "name: 'off'" in out or "name: off" in out


def test_yaml_boolean_word_in_a_file_is_explained(real_plugins, capsys):
    (real_plugins / "c.yaml").write_text("run:\n  progress: off\n")
    rc, _, err = run_cli(capsys, "config", "--algo", "ippo", "--env", "grid_wireless_3x3", "--config",
                         str(real_plugins / "c.yaml"))
    line = assert_usage_error(rc, err, "config", "run.progress", "'False'", "'auto', 'bar'")
    assert "quote" in line


@pytest.mark.parametrize("argv, key", [
    (["train", "--algo", "ippo", "--env", "grid_wireless_3x3", "algo.actor_lr=nan"], "algo.actor_lr"),
    (["train", "--algo", "ippo", "--env", "grid_wireless_3x3", "seed=-1"], "seed"),
    (["train", "--algo", "dppo", "--env", "cacc_catchup", "env.dt=0"], "env.dt"),
    (["plot", "nowhere", "-o", "x.bmp"], "-o"),
])
def test_bad_inputs_in_a_subprocess(tmp_path, argv, key):
    """The installed console script, as a user runs it: exit 2, one line, no traceback."""
    envvars = {k: v for k, v in os.environ.items() if not k.startswith("SAFENET_")}
    exe = Path(sys.executable).with_name("safenet")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "safenet.cli"]
    proc = subprocess.run([*cmd, *argv, f"run.dir={tmp_path}"] if argv[0] == "train" else [*cmd, *argv],
                          capture_output=True, text=True, cwd=tmp_path, env=envvars, timeout=120)
    assert_usage_error(proc.returncode, proc.stderr, argv[0], key)
    assert not any(tmp_path.iterdir())
