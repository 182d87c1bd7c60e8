"""Layered configuration: layer order, and errors that name the key (and its layer)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

from safenet import config as cfgmod
from safenet.algorithm import Algorithm
from safenet.errors import ConfigError
from safenet.specs import AlgorithmSpec, EnvSpec
from safenet.testing import ToyConfig


# ------------------------------------------------------------------------------------------------
# Throwaway algorithm and env specs
# ------------------------------------------------------------------------------------------------

@dataclass
class Inner:
    depth: int = 1
    label: str = "inner"


@dataclass
class DummyConfig:
    a: int = 0          # set by nobody
    b: int = 0          # last set by the env's suggestions
    c: int = 0          # last set by the preset
    d: int = 0          # last set by the --config file
    e: int = 0          # last set on the command line
    lr: float = 0.1
    name: str = "dummy"
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.lr < 0:
            raise ValueError(f"algo.lr must be >= 0, got {self.lr}")


class Dummy(Algorithm):
    rollout_steps = 4

    def act(self, obs, info, deterministic=False):
        return np.zeros(obs.shape[:2], dtype=np.int64), {}

    def update(self, rollout):
        return {"train/dummy": 1.0}


ALGO = AlgorithmSpec(name="dummy", factory=f"{__name__}:Dummy", config=DummyConfig,
                     overrides={"trainer": {"n_envs": 3, "eval_episodes": 4, "keep_checkpoints": 4}})
ENV = EnvSpec(name="toyish", factory="safenet.testing:make_toy", config=ToyConfig,
              defaults={"episode_length": 5},
              overrides={"algo": {"b": 2, "c": 2, "d": 2, "e": 2, "not_an_algo_key": 1},
                         "trainer": {"eval_episodes": 5, "keep_checkpoints": 5}})


def _yaml(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_factory_of_this_module_imports_under_pytest_import_mode():
    assert ALGO.load() is Dummy
    assert ENV.load().__name__ == "make_toy"


def test_defaults_and_sections():
    cfg = cfgmod.compose(ALGO, EnvSpec(name="plain", factory="safenet.testing:make_toy", config=ToyConfig))
    assert set(cfg.keys()) == {"seed", "algo", "env", "trainer", "run"}
    assert cfg.algo.a == 0 and cfg.algo.lr == 0.1 and cfg.algo.inner.depth == 1
    assert cfg.env.n_agents == 4 and cfg.env.episode_length == 8
    assert cfg.trainer.n_envs == 3                       # the algorithm's suggestion over the core default
    assert cfg.trainer.total_steps == cfgmod.TrainerConfig().total_steps
    assert isinstance(cfgmod.section_object(cfg.algo), DummyConfig)
    assert isinstance(cfgmod.section_object(cfg.env), ToyConfig)


def test_layer_order(tmp_path):
    preset = _yaml(tmp_path / "preset.yaml", "algo: {c: 3, d: 3, e: 3}\ntrainer: {keep_checkpoints: 6}\n")
    f1 = _yaml(tmp_path / "one.yaml", "algo: {d: 4, e: 4}\nenv: {n_agents: 7}\n")
    f2 = _yaml(tmp_path / "two.yaml", "algo: {d: 44}\n")
    cfg = cfgmod.compose(ALGO, ENV, preset=preset, files=[f1, f2], overrides=["algo.e=5", "algo.inner.depth=9"])
    assert (cfg.algo.a, cfg.algo.b, cfg.algo.c, cfg.algo.d, cfg.algo.e) == (0, 2, 3, 44, 5)
    assert cfg.algo.inner.depth == 9 and cfg.algo.inner.label == "inner"
    assert "not_an_algo_key" not in cfg.algo             # env suggestions for keys the algo lacks are dropped
    assert cfg.trainer.n_envs == 3                       # algorithm suggestion, untouched later
    assert cfg.trainer.eval_episodes == 5                # env suggestion beats the algorithm's
    assert cfg.trainer.keep_checkpoints == 6             # preset beats env
    assert cfg.env.episode_length == 5                   # env default over its dataclass default
    assert cfg.env.n_agents == 7 and cfg.env.cost_limit == 3.0


def test_command_line_beats_every_file_and_later_files_beat_earlier(tmp_path):
    f1 = _yaml(tmp_path / "one.yaml", "trainer: {n_envs: 11}\nseed: 1\n")
    f2 = _yaml(tmp_path / "two.yaml", "trainer: {n_envs: 12}\n")
    cfg = cfgmod.compose(ALGO, ENV, files=[f1, f2])
    assert cfg.trainer.n_envs == 12 and cfg.seed == 1
    cfg = cfgmod.compose(ALGO, ENV, files=[f2, f1], overrides=["seed=4"])
    assert cfg.trainer.n_envs == 11 and cfg.seed == 4


def test_implied_values_beat_env_defaults():
    cfg = cfgmod.compose(ALGO, ENV, implied={"n_agents": "6", "episode_length": "12"})
    assert cfg.env.n_agents == 6 and cfg.env.episode_length == 12
    assert isinstance(cfg.env.n_agents, int)


def test_yaml_floats_in_exponent_form_are_floats(tmp_path):
    f = _yaml(tmp_path / "lr.yaml", "algo:\n  lr: 1e-3\n")
    cfg = cfgmod.compose(ALGO, ENV, files=[f])
    assert cfg.algo.lr == pytest.approx(1e-3)
    assert cfgmod.compose(ALGO, ENV, overrides=["algo.lr=2e-4"]).algo.lr == pytest.approx(2e-4)


def test_preset_by_name_from_configs_folder(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text("algo: {c: 30}\n")
    monkeypatch.chdir(tmp_path)
    assert cfgmod.compose(ALGO, ENV, preset="mine").algo.c == 30
    with pytest.raises(ConfigError) as err:
        cfgmod.compose(ALGO, ENV, preset="mien")
    assert "unknown preset 'mien'" in str(err.value) and "mine" in str(err.value)


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------

def _error(**kwargs) -> str:
    with pytest.raises(ConfigError) as err:
        cfgmod.compose(ALGO, ENV, **kwargs)
    return str(err.value)


def test_unknown_key_names_full_path_and_close_match():
    msg = _error(overrides=["algo.nmae=x"])
    assert "'algo.nmae'" in msg and "did you mean 'algo.name'" in msg
    assert "command line" in msg
    msg = _error(overrides=["algo.inner.dept=3"])
    assert "'algo.inner.dept'" in msg and "'algo.inner.depth'" in msg
    msg = _error(overrides=["trainer.n_env=3"])
    assert "'trainer.n_env'" in msg and "'trainer.n_envs'" in msg


def test_unknown_key_on_sac_suggests_kappa(toy_pm):
    from safenet.trainer import Selection

    sel = Selection.resolve("sac", "toy_line", toy_pm)
    with pytest.raises(ConfigError) as err:
        sel.compose(overrides=["algo.kapa=2"])
    assert "'algo.kapa'" in str(err.value) and "did you mean 'algo.kappa'" in str(err.value)
    assert sel.compose(overrides=["algo.kappa=2"]).algo.kappa == 2


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    f = _yaml(tmp_path / "bad.yaml", "trainer:\n  totl_steps: 5\n")
    msg = _error(files=[f])
    assert "'trainer.totl_steps'" in msg and "bad.yaml" in msg and "'trainer.total_steps'" in msg
    msg = _error(preset=_yaml(tmp_path / "p.yaml", "nope: 1\n"))
    assert "'nope'" in msg and "p.yaml" in msg


@pytest.mark.parametrize("override, key", [
    ("trainer.n_envs=abc", "trainer.n_envs"),
    ("env.n_agents=1.5", "env.n_agents"),
    ("seed=abc", "seed"),
    ("algo.inner.depth=deep", "algo.inner.depth"),
])
def test_wrong_type_names_the_key(override, key):
    msg = _error(overrides=[override])
    assert f"'{key}'" in msg and "command line" in msg


def test_scalar_for_a_section_names_the_section():
    msg = _error(overrides=["algo.inner=3"])
    assert "'algo.inner'" in msg


def test_wrong_type_in_a_file(tmp_path):
    msg = _error(files=[_yaml(tmp_path / "t.yaml", "trainer: {n_envs: many}\n")])
    assert "'trainer.n_envs'" in msg and "t.yaml" in msg


@pytest.mark.parametrize("bad", ["trainer.n_envs", "=3", "algo.e"])
def test_malformed_override(bad):
    msg = _error(overrides=["algo.e=1", bad])
    assert repr(bad) in msg and "key=value" in msg


@pytest.mark.parametrize("override, words", [
    ("trainer.total_steps=0", "trainer.total_steps"),
    ("trainer.n_envs=-2", "trainer.n_envs"),
    ("run.progress=loud", "run.progress"),
    ("algo.lr=-1", "algo.lr"),                      # the algorithm config's own __post_init__ check
])
def test_value_checks(override, words):
    assert words in _error(overrides=[override])


def test_missing_and_unparsable_files(tmp_path):
    assert "file not found" in _error(files=[str(tmp_path / "nope.yaml")])
    assert "cannot parse" in _error(files=[_yaml(tmp_path / "broken.yaml", "algo: {a: [1, 2\n")])
    assert "mapping" in _error(files=[_yaml(tmp_path / "list.yaml", "- 1\n- 2\n")])


def test_yaml_round_trip_of_the_resolved_config():
    cfg = cfgmod.compose(ALGO, ENV, overrides=["algo.e=5", "env.n_agents=3", "run.name=x"])
    text = cfgmod.to_yaml(cfg)
    back = cfgmod.from_yaml_text(text, ALGO, ENV)
    assert isinstance(back, DictConfig)
    assert OmegaConf.to_container(back) == OmegaConf.to_container(cfg)
    # typed: a wrong saved value is refused, naming where it came from
    with pytest.raises(ConfigError, match="saved config.yaml"):
        cfgmod.from_yaml_text(text.replace("n_agents: 3", "n_agents: three"), ALGO, ENV)
