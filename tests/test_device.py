"""``trainer.device``: every algorithm runs on the device it is given or refuses it before anything runs."""
from __future__ import annotations

import io

import pytest
import torch

from safenet.config import section_object
from safenet.device import parse_device, resolve_device
from safenet.device_check import check_algorithm_device, misplaced_tensors, optimizer_state_count
from safenet.errors import ConfigError
from safenet.plugins import get_plugin_manager
from safenet.rollout import Collector
from safenet.testing import run_cli
from safenet.trainer import Selection, make_game, start_run

PM = get_plugin_manager()
PPO_FAMILY = {"ippo", "mappo", "happo", "mappo-l", "dec-mappo-l"}
#: a small environment each algorithm can train on, in order of preference
ENVS = ("cacc_catchup", "grid_wireless_3x3", "multi_access_broadcast")
#: overrides that make the short meta-device run reach every part of the update
_SHORT = ["algo.epochs=1", "algo.minibatches=2"]
EXTRA = {"dmpo": [*_SHORT, "algo.warmup_steps=0", "algo.warmup_model_steps=2", "algo.model_steps=2", "algo.branches=4",
                  "algo.rollout_length=2", "algo.model_every=1", "algo.model_usage=1.0", "algo.inner_updates=1",
                  "algo.lagrange.enabled=true"],
         "dppo": [*_SHORT, "algo.lagrange.enabled=true"], "cppo": [*_SHORT, "algo.lagrange.enabled=true"]}
HAS_CUDA = torch.cuda.is_available()


def env_for(algo: str) -> str:
    spec = PM.algorithm(algo)
    for env in ENVS:
        if env in PM.environment_names() and not spec.incompatibility(PM.environment(env)[0].tags):
            return env
    pytest.skip(f"no small environment for {algo} among {ENVS}")


def algorithms() -> list:
    return list(PM.algorithm_names())


def test_device_strings_are_checked_with_the_valid_choices():
    assert parse_device("cuda:1") == ("cuda", 1) and parse_device("CPU") == ("cpu", None)
    for bad in ("gpu", "cpu:0", "cuda:x", ""):
        with pytest.raises(ConfigError, match=r"trainer\.device=.*valid choices: cpu, cuda, cuda:<index>, mps"):
            parse_device(bad)
    with pytest.raises(ConfigError, match=r"trainer\.device='cuda': algorithm 'x' runs on cpu only; set trainer\.device=cpu"):
        resolve_device("cuda", ("cpu",), "x")
    assert resolve_device("cpu", ("cpu",)) == torch.device("cpu")


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_a_one_line_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--algo", "dppo", "--env", "cacc_catchup", f"run.dir={tmp_path}",
                           "trainer.device=cuda")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "trainer.device='cuda': no usable CUDA GPU here" in err and "valid choices on this machine: cpu" in err
    assert not any(tmp_path.iterdir())                      # refused before a run directory was left behind


def test_a_bad_device_string_fails_when_the_config_composes():
    sel = Selection.resolve("dppo", "cacc_catchup", PM)
    with pytest.raises(ConfigError, match=r"trainer\.device='gpu': must be one of cpu, cuda, cuda:<index>, mps"):
        sel.compose(overrides=["trainer.device=gpu"])


@pytest.mark.parametrize("algo", algorithms())
def test_every_algorithm_runs_on_its_device_or_refuses_it(algo, tmp_path):
    """Algorithms that declare an accelerator keep parameters, optimizer state and update on the device
    (checked on ``meta``); the others refuse ``trainer.device=cuda`` in one line before anything is built."""
    env = env_for(algo)
    sel = Selection.resolve(algo, env, PM)
    if "cuda" not in sel.algo.devices:
        cfg = sel.compose(overrides=[f"run.dir={tmp_path}", "run.progress=none", "trainer.device=cuda"])
        with pytest.raises(ConfigError, match=rf"^trainer\.device='cuda': algorithm '{algo}' runs on cpu only"):
            start_run(sel, cfg, pm=PM)
        assert not any(tmp_path.iterdir())
        return
    learner = check_algorithm_device(algo, env, ["trainer.rollout_steps=8", *EXTRA.get(algo, [])], steps=8, pm=PM)
    assert optimizer_state_count(learner) > 0


@pytest.mark.filterwarnings("ignore:.*copying from a non-meta parameter")
@pytest.mark.parametrize("algo", [a for a in PM.algorithm_names() if "cuda" in PM.algorithm(a).devices])
def test_a_checkpoint_from_the_host_loads_onto_the_device(algo):
    """State written on one device (here the cpu, after a real update) loads into an algorithm on another
    (``meta``): parameters and optimizer state follow the algorithm, not the checkpoint."""
    env = env_for(algo)
    sel = Selection.resolve(algo, env, PM)
    cfg = sel.compose(overrides=["trainer.rollout_steps=8", *EXTRA.get(algo, [])])
    game = make_game(sel, cfg, 2, 0)
    cls = sel.algo.load()
    host = cls(game.spec, section_object(cfg.algo), seed=1, device="cpu")
    host.update(Collector(game, seed=0).collect(host, 8)[0])
    buf = io.BytesIO()
    torch.save(host.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, map_location="cpu", weights_only=True)
    device_side = cls(game.spec, section_object(cfg.algo), seed=1, device="meta")
    device_side.load_state_dict(state)
    game.close()
    assert optimizer_state_count(device_side) == optimizer_state_count(host) > 0
    assert misplaced_tensors(device_side, "meta") == []


# -- on a machine with a CUDA GPU -------------------------------------------------------------------
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")


@needs_cuda
@pytest.mark.parametrize("algo", [a for a in PM.algorithm_names() if "cuda" in PM.algorithm(a).devices])
def test_cuda_run_keeps_its_learner_on_the_gpu_and_its_checkpoint_loads_on_the_cpu(algo, tmp_path, capsys):
    env = env_for(algo)
    common = [f"run.dir={tmp_path}", "run.progress=none", "run.tensorboard=false", "trainer.n_envs=2",
              "trainer.rollout_steps=8", "trainer.total_steps=16", "trainer.eval_episodes=1", *EXTRA.get(algo, [])]
    sel = Selection.resolve(algo, env, PM)
    trainer = start_run(sel, sel.compose(overrides=[*common, "trainer.device=cuda"]), pm=PM)
    trainer.train()
    assert misplaced_tensors(trainer.algo, "cuda") == [] and optimizer_state_count(trainer.algo) > 0
    run_dir = trainer.run.dir
    code, out, err = run_cli(capsys, "eval", str(run_dir), "--episodes", "1", "--device", "cpu", "--json")
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", "--resume", str(run_dir), "trainer.device=cpu", "trainer.total_steps=32")
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", "--resume", str(run_dir), "trainer.device=cuda", "trainer.total_steps=48")
    assert code == 0, err
