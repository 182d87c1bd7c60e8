"""The template's own tests: what every algorithm plugin should check about itself.

The plugin manager is built in-process from the plugin module (no install needed) plus
``safenet.testing`` for the ``toy_line`` env; the entry point itself is checked against
``pyproject.toml``.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

import safenet.testing
from safenet import ConfigError, GameSpec, Graph, IncompatibleError
from safenet.plugins import PluginManager
from safenet.testing import check_algorithm
from safenet.trainer import Selection, start_run

import safenet_template
import safenet_template.plugin
from safenet_template.algorithm import IndependentReinforce
from safenet_template.config import ReinforceConfig

ALGO = "independent-reinforce"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pm(monkeypatch) -> PluginManager:
    """Only this plugin and the toy env, whatever else is installed or named in SAFENET_PLUGINS."""
    monkeypatch.delenv("SAFENET_PLUGINS", raising=False)
    return PluginManager(autoload=False, strict=True, plugins=[
        ("safenet_template", safenet_template.plugin), ("safenet.testing", safenet.testing)])


def test_registers_the_algorithm(pm):
    spec = pm.algorithm(ALGO)
    assert pm.algorithm("independent_reinforce") is spec          # - and _ are the same name
    assert spec.config is ReinforceConfig and spec.load() is IndependentReinforce
    assert spec.requires == {"discrete"}
    assert [i.status for i in pm.infos] == ["active", "active"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is new in Python 3.11")
def test_entry_point_is_declared():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "safenet-template"
    assert project["version"] == safenet_template.__version__
    # entry-point name = import name; the value is the module with the hook implementations
    assert project["entry-points"]["safenet"] == {"safenet_template": "safenet_template.plugin"}


def test_default_config_composes_and_bad_values_fail(pm):
    sel = Selection.resolve(ALGO, "toy_line", pm)
    cfg = sel.compose()
    assert cfg.algo.lr == ReinforceConfig.lr and list(cfg.algo.hidden) == []
    with pytest.raises(ConfigError, match="algo.lr"):
        sel.compose(overrides=["algo.lr=-1"])
    with pytest.raises(ConfigError, match="algo.gama"):             # misspelt key: named, with a hint
        sel.compose(overrides=["algo.gama=0.5"])


def test_refuses_continuous_actions(pm):
    assert pm.algorithm(ALGO).incompatibility(frozenset({"continuous"})) is not None
    spec = GameSpec(name="cont", agents=("a", "b"), graph=Graph.line(2), obs_dims=(3, 3),
                    action_kind="continuous", action_dims=(1, 1), episode_length=5)
    with pytest.raises(IncompatibleError):
        IndependentReinforce(spec, ReinforceConfig())


def test_acts_on_the_toy_game(toy_game):                             # fixture from safenet.testing
    algo = IndependentReinforce(toy_game.spec, ReinforceConfig(hidden=[8]), seed=0)
    obs, info = toy_game.reset(seed=0)
    for deterministic in (False, True):
        actions, extras = algo.act(obs, info, deterministic=deterministic)
        assert actions.shape == (toy_game.num_envs, toy_game.spec.n) and actions.dtype == np.int64
        assert ((actions >= 0) & (actions < 2)).all() and extras == {}
        toy_game.step(actions)


def test_check_algorithm(pm, safenet_run_dir):
    """safenet's own check: compose the defaults, train two iterations, round-trip a checkpoint."""
    final = check_algorithm(ALGO, "toy_line", safenet_run_dir, pm=pm)
    assert "rollout/ep_return" in final and "train/loss_policy" in final


def test_learns_on_toy_line(pm, safenet_run_dir):
    """Reward 1 for matching the local state: random play earns about 4 of 8 per episode."""
    sel = Selection.resolve(ALGO, "toy_line", pm)
    cfg = sel.compose(overrides=[f"run.dir={safenet_run_dir}", "run.progress=none", "run.tensorboard=false",
                                 "trainer.total_steps=4096", "trainer.eval_every_steps=-1", "seed=1"])
    trainer = start_run(sel, cfg, pm=pm)
    trainer.train()
    with open(trainer.run.dir / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    ret = [float(r["rollout/ep_return"]) for r in rows]
    cost = [float(r["rollout/ep_cost/uses"]) for r in rows]
    assert ret[0] < 4.6, ret
    assert np.mean(ret[-3:]) > ret[0] + 1.2, ret
    assert np.mean(cost[-3:]) <= 3.0 + 0.5, cost                    # the limit is 3 uses per episode
