"""Tests of the DADC plugin (``dadc``).

Paper: "Decentralized actor, decentralized critic with an approximate information state" (DADC
seed, §5, appendix E). A tiny team game with common information is defined here (the plugin may
not depend on an env plugin); tests on the team benchmarks run when ``safenet-teams`` is installed.
``pytest plugins/dadc`` takes well under a minute.
"""
from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import safenet
from safenet.errors import ConfigError, IncompatibleError, SafenetError
from safenet.game import BatchedGame, GameSpec
from safenet.graph import Graph
from safenet.plugins import PluginManager
from safenet.rollout import Collector
from safenet.specs import EnvSpec
from safenet.testing import ToyConfig, ToyLineGame, check_algorithm, check_game
from safenet.trainer import Selection, evaluate, start_run

import safenet_dadc.plugin as dadc_plugin
from safenet_dadc.algorithm import Dadc
from safenet_dadc.config import DadcConfig
from safenet_dadc.prescriptions import PrescriptionSpace

try:
    import safenet_teams.plugin as teams_plugin
except ImportError:  # pragma: no cover
    teams_plugin = None
needs_teams = pytest.mark.skipif(teams_plugin is None, reason="safenet-teams not installed")


# ------------------------------------------------------------------------------------------------
# A tiny team game with common information
# ------------------------------------------------------------------------------------------------

@dataclass
class SignalConfig:
    n_agents: int = 2
    episode_length: int = 10
    stay: float = 0.9          # P(common signal keeps its value)


class SignalGame(BatchedGame):
    """Agents see a private bit ``s_i`` (fresh each step) and a common signal ``z`` (a sticky Markov bit).
    Team reward: the fraction of agents playing ``s_i xor z``. Optimal: the prescription ``ℓ -> ℓ xor z``
    (return = episode length); ignoring ``z`` or ``s_i`` earns half of it."""

    def __init__(self, cfg: SignalConfig, num_envs: int = 1, seed: int | None = None) -> None:
        n = cfg.n_agents
        self.cfg, self.num_envs = cfg, num_envs
        self.spec = GameSpec(name="signal", agents=tuple(f"a{i}" for i in range(n)), graph=Graph.complete(n),
                             obs_dims=(3,) * n, action_kind="discrete", action_dims=(2,) * n,
                             episode_length=cfg.episode_length, common_obs_dim=2, n_local_states=(2,) * n,
                             tags=frozenset({"finite"}))
        self.rng = np.random.default_rng(seed)
        self.s = np.zeros((num_envs, n), dtype=np.int64)
        self.z = np.zeros(num_envs, dtype=np.int64)
        self.t = np.zeros(num_envs, dtype=np.int64)

    def _out(self):
        obs = np.concatenate([self.s[..., None], np.broadcast_to(np.eye(2)[self.z][:, None], (self.num_envs, self.spec.n, 2))],
                             -1).astype(np.float32)
        return obs, {"local_state": self.s.copy(), "common_obs": np.eye(2, dtype=np.float32)[self.z],
                     "episode_step": self.t.copy()}

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.s = self.rng.integers(0, 2, self.s.shape)
        self.z = self.rng.integers(0, 2, self.z.shape)
        self.t[:] = 0
        return self._out()

    def step(self, actions):
        a = self.check_actions(actions)
        team = (a == (self.s ^ self.z[:, None])).mean(1)
        reward = np.repeat(team[:, None], self.spec.n, 1)
        self.s = self.rng.integers(0, 2, self.s.shape)
        flip = self.rng.random(self.num_envs) > self.cfg.stay
        self.z = np.where(flip, 1 - self.z, self.z)
        self.t += 1
        trunc = self.t >= self.spec.episode_length
        obs, info = self._out()
        if trunc.any():
            info.update({"final_obs": obs.copy(), **{f"final_{k}": info[k].copy() for k in
                                                     ("local_state", "common_obs", "episode_step")}})
            self.t[trunc] = 0
            obs, fresh = self._out()
            info.update(fresh)
        return obs, reward, np.zeros((self.num_envs, self.spec.n, 0)), np.zeros(self.num_envs, bool), trunc, info


def make_signal(cfg: SignalConfig, num_envs: int = 1, seed: int | None = None) -> SignalGame:
    return SignalGame(cfg, num_envs, seed)


class _SignalPlugin:
    @safenet.hookimpl
    def safenet_environments(self):
        return [EnvSpec(name="signal", factory=f"{__name__}:make_signal", config=SignalConfig,
                        tags=frozenset({"finite", "discrete", "common_obs"}))]


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch):
    for var in ("SAFENET_PLUGINS", "SAFENET_STRICT_PLUGINS", "SAFENET_DISABLE_PLUGIN_AUTOLOAD",
                "SAFENET_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


def plugin_manager() -> PluginManager:
    extra = [("teams", teams_plugin)] if teams_plugin is not None else []
    import safenet.testing
    return PluginManager(autoload=False, strict=True, plugins=[("safenet_dadc", dadc_plugin), ("signal", _SignalPlugin()),
                                                              ("toy", safenet.testing), *extra])


def algo_for(game: BatchedGame, seed: int = 0, **kw) -> Dadc:
    torch.set_num_threads(1)
    return Dadc(game.spec, DadcConfig(**kw), seed=seed)


# ------------------------------------------------------------------------------------------------
# registration and config
# ------------------------------------------------------------------------------------------------

def test_entry_point_is_declared():
    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["safenet"] == {"safenet_dadc": "safenet_dadc.plugin"}


def test_registration_and_requirements():
    pm = plugin_manager()
    spec = pm.algorithm("dadc")
    assert spec.requires == {"common_obs", "finite", "discrete"} and spec.load() is Dadc
    with pytest.raises(IncompatibleError, match="common_obs"):
        Selection.resolve("dadc", "toy_line", pm)
    with pytest.raises(IncompatibleError, match="common_obs_dim"):
        Dadc(ToyLineGame(ToyConfig()).spec, DadcConfig())


@pytest.mark.parametrize("kw, key", [({"ais": "lstm"}, "algo.ais"), ({"update": "trpo"}, "algo.update"),
                                     ({"gamma": 1.0}, "algo.gamma"), ({"ais_lambda": 2.0}, "algo.ais_lambda"),
                                     ({"hidden": []}, "algo.hidden"), ({"lr_actor": 0.0}, "algo.lr_actor"),
                                     ({"execution": "central"}, "algo.execution")])
def test_bad_config_names_the_key(kw, key):
    with pytest.raises(ValueError, match=key):
        DadcConfig(**kw)


def test_bad_config_through_the_cli_layer():
    sel = Selection.resolve("dadc", "signal", plugin_manager())
    with pytest.raises(ConfigError, match="algo.prescription must be one of deterministic, gaussian"):
        sel.compose(overrides=["algo.prescription=beta"])


# ------------------------------------------------------------------------------------------------
# prescriptions
# ------------------------------------------------------------------------------------------------

def test_each_agent_applies_its_own_component_to_its_own_local_state():
    spec = SignalGame(SignalConfig(n_agents=3)).spec
    space = PrescriptionSpace(spec, "deterministic", shared=False, joint_limit=1)
    assert space.kind == "factorised"
    # theta[b, copy, block * L + l] = action; block k is agent k's component
    theta = np.array([[[1, 0, 0, 1, 1, 1]] * 3], dtype=np.float32)                 # one copy per agent
    actions = space.agent_actions(theta, np.array([[0, 1, 1]]), np.arange(3), np.random.default_rng(0))
    assert actions.tolist() == [[1, 1, 1]]            # agent0: θ0[0]=1, agent1: θ1[1]=1, agent2: θ2[1]=1
    actions = space.agent_actions(theta, np.array([[1, 0, 0]]), np.arange(3), np.random.default_rng(0))
    assert actions.tolist() == [[0, 0, 1]]
    shared = PrescriptionSpace(spec, "deterministic", shared=True)
    assert shared.blocks == 1 and shared.feature_dim == 4 and shared.kind == "joint" and shared.actor_out == 4


def test_joint_prescriptions_list_every_deterministic_prescription():
    spec = SignalGame(SignalConfig(n_agents=2)).spec
    space = PrescriptionSpace(spec, "deterministic", shared=False)
    assert space.kind == "joint" and space.actor_out == 16 and space.param_dim == 1
    rules = {tuple(space.table[j].reshape(-1).tolist()) for j in range(16)}
    assert len(rules) == 16                                          # all 2^(2 agents x 2 local states) rules
    theta = torch.tensor([[[5.0]]])                                  # [B=1, C=1, 1]
    rule = space.table[5]                                            # [P=2, L=2]
    actions = space.agent_actions(theta.numpy(), np.array([[1, 0]]), np.zeros(2, dtype=np.int64),
                                  np.random.default_rng(0))
    assert actions.tolist() == [[int(rule[0, 1]), int(rule[1, 0])]]
    out = torch.randn(3, 1, 16)
    logp = space.log_prob(out, None, torch.zeros(3, 1, 1))
    assert torch.allclose(logp, torch.log_softmax(out, -1)[..., 0])


def test_gaussian_prescriptions_are_randomised_by_softmax():
    spec = SignalGame(SignalConfig(n_agents=2)).spec
    space = PrescriptionSpace(spec, "gaussian", shared=True)
    logits = np.log([[0.2, 0.8], [0.9, 0.1]]).reshape(-1)
    theta = np.broadcast_to(logits, (20000, 1, 4)).astype(np.float32)
    a = space.agent_actions(theta, np.tile([[0, 1]], (20000, 1)), np.zeros(2, dtype=np.int64), np.random.default_rng(1))
    assert abs(a[:, 0].mean() - 0.8) < 0.015 and abs(a[:, 1].mean() - 0.1) < 0.015


# ------------------------------------------------------------------------------------------------
# the state approximator
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["nll", "mmd"])
def test_ais_loss_decreases_on_fixed_data(loss):
    game = SignalGame(SignalConfig(episode_length=10), num_envs=8, seed=0)
    algo = algo_for(game, ais_loss=loss, lr_schedule="constant", lr_ais=1e-2)
    rollout, _ = Collector(game, seed=0).collect(algo, 20)
    coord = algo.coordinators[0]                                     # agent 0's coordinator
    ex = rollout.extras
    theta = torch.as_tensor(ex["theta"][:, :, :1], dtype=torch.float32)
    phi = algo.space.features(theta)
    start = torch.as_tensor(ex["start"][:, :, 0] > 0.5)
    prev = torch.cat([torch.zeros_like(phi[:1]), phi[:-1]]) * (~start).float()[..., None, None]
    z = torch.as_tensor(rollout.infos["common_obs"])[:, :, None]
    inputs = torch.cat([z, prev], -1)
    reward = torch.as_tensor(rollout.reward[:, :, :1], dtype=torch.float32)
    done = torch.as_tensor(rollout.done)
    before = [x.item() for x in coord.ais_losses(inputs, phi, reward, start, done)]
    for _ in range(60):
        coord._step("ais", coord.ais_losses(inputs, phi, reward, start, done)[0], coord.ais_modules)
    after = [x.item() for x in coord.ais_losses(inputs, phi, reward, start, done)]
    assert after[0] < 0.5 * before[0], (before, after)          # L_AIS
    assert after[1] < 0.5 * before[1], (before, after)          # its reward part L_R


# ------------------------------------------------------------------------------------------------
# decentralized execution: identical copies
# ------------------------------------------------------------------------------------------------

def run_iterations(game, algo, iterations: int):
    collector = Collector(game, seed=1)
    thetas = []
    for _ in range(iterations):
        rollout, _ = collector.collect(algo, algo.rollout_steps)
        thetas.append(rollout.extras["theta"])
        algo.update(rollout)
    return np.concatenate(thetas)                                                 # [T, B, n, p]


@pytest.mark.parametrize("kw", [{}, {"joint_limit": 1}, {"prescription": "gaussian", "update": "ac"}])
def test_coordinator_copies_stay_identical(kw):
    game = SignalGame(SignalConfig(n_agents=3), num_envs=4, seed=0)
    algo = algo_for(game, **kw)
    assert algo.C == 3
    thetas = run_iterations(game, algo, 6)
    assert algo.copy_divergence() == 0.0                       # every parameter bit-identical across agents
    for k in range(1, 3):                                      # every agent sampled the same prescription
        assert np.array_equal(thetas[:, :, k], thetas[:, :, 0])


def test_without_a_common_seed_copies_disagree():
    game = SignalGame(SignalConfig(n_agents=2), num_envs=4, seed=0)
    algo = algo_for(game, common_seed=False)
    thetas = run_iterations(game, algo, 2)
    assert algo.copy_divergence() > 1e-3
    assert not np.array_equal(thetas[:, :, 1], thetas[:, :, 0])


def test_shared_execution_samples_what_each_copy_samples():
    game = SignalGame(SignalConfig(n_agents=2), num_envs=4, seed=0)
    dec, sh = algo_for(game, seed=5), algo_for(game, seed=5, execution="shared")
    obs, info = game.reset(seed=0)
    a1, e1 = dec.act(obs, info)
    a2, e2 = sh.act(obs, info)
    assert sh.C == 1 and np.array_equal(a1, a2) and np.allclose(e1["theta"], e2["theta"])


@pytest.mark.parametrize("kw", [{}, {"prescription": "gaussian"}])
def test_shared_and_decentralized_training_coincide(kw):
    """Every agent's own copy computes exactly what the single shared coordinator computes."""
    runs = {}
    for mode in ("shared", "decentralized"):
        game = SignalGame(SignalConfig(n_agents=3), num_envs=4, seed=0)
        algo = algo_for(game, seed=2, execution=mode, **kw)
        runs[mode] = (run_iterations(game, algo, 3), algo)
    (t_sh, sh), (t_dec, dec) = runs["shared"], runs["decentralized"]
    assert np.array_equal(t_sh, t_dec)
    for c in dec.coordinators:
        for p_sh, p_dec in zip((p for m in sh.coordinators[0].modules() for p in m.parameters()),
                               (p for m in c.modules() for p in m.parameters())):
            assert torch.equal(p_sh, p_dec)


def test_communication_is_zero():
    algo = algo_for(SignalGame(SignalConfig()))
    assert algo.communication() == {"floats_per_step": 0.0, "floats_per_update": 0.0}


def test_hidden_state_resets_at_episode_starts_without_episode_step():
    game = SignalGame(SignalConfig(episode_length=5), num_envs=2, seed=0)
    a_with, a_without = algo_for(game, seed=1), algo_for(game, seed=1)
    obs, info = game.reset(seed=0)
    for _ in range(12):
        act1, ex1 = a_with.act(obs, info, deterministic=True)
        act2, ex2 = a_without.act(obs, {k: v for k, v in info.items() if k != "episode_step"}, deterministic=True)
        assert np.array_equal(ex1["start"], ex2["start"]) and np.array_equal(act1, act2)
        obs, *_, info = game.step(act1)


def test_rollout_must_start_at_an_episode_start():
    game = SignalGame(SignalConfig(episode_length=10), num_envs=2, seed=0)
    algo = algo_for(game)
    collector = Collector(game, seed=0)
    collector.collect(algo, 3)
    rollout, _ = collector.collect(algo, 10)
    with pytest.raises(SafenetError, match="whole episodes"):
        algo.update(rollout)


# ------------------------------------------------------------------------------------------------
# through the trainer
# ------------------------------------------------------------------------------------------------

def test_check_algorithm_on_the_toy_team(tmp_path):
    row = check_algorithm("dadc", "signal", tmp_path, pm=plugin_manager())
    assert row["train/copy_divergence"] == 0.0 and row["iteration"] == 2


def test_learns_the_signal_game(tmp_path):
    """Random play earns half of the episode length (10); the optimal prescription earns all of it."""
    pm = plugin_manager()
    sel = Selection.resolve("dadc", "signal", pm)
    cfg = sel.compose(overrides=[f"run.dir={tmp_path}", "run.progress=none", "run.tensorboard=false",
                                 "trainer.total_steps=24000", "trainer.eval_every_steps=0", "trainer.eval_episodes=64",
                                 "trainer.torch_threads=1", "algo.lr_actor=3e-3", "algo.lr_critic=3e-3",
                                 "algo.lr_schedule=constant"])
    trainer = start_run(sel, cfg, pm=pm)
    final = trainer.train()
    assert final["eval/ep_return"] > 9.0, final["eval/ep_return"]
    rows = list(csv.DictReader(open(trainer.run.dir / "metrics.csv")))
    assert all(float(r["train/copy_divergence"]) == 0.0 for r in rows)


@needs_teams
@pytest.mark.parametrize("env, overrides", [("multi_access_broadcast", []),
                                            ("demand_response", ["env.n_devices=3", "env.episode_length=10",
                                                                 "algo.prescription=gaussian", "algo.ais=common_obs"])])
def test_check_algorithm_on_the_team_benchmarks(env, overrides, tmp_path):
    row = check_algorithm("dadc", env, tmp_path, overrides=overrides, pm=plugin_manager())
    assert row["train/copy_divergence"] == 0.0


@needs_teams
@pytest.mark.parametrize("preset, env", [("dadc-mabc", "multi_access_broadcast"),
                                         ("dadc-demand-response", "demand_response")])
def test_presets_compose(preset, env):
    sel = Selection.resolve("dadc", env, plugin_manager())
    cfg = sel.compose(preset=preset)
    assert cfg.trainer.total_steps >= 480_000 and cfg.algo.gamma == 0.9
    if env == "demand_response":
        assert cfg.algo.prescription == "gaussian" and cfg.algo.execution == "shared"


@needs_teams
def test_default_budget_is_the_converging_one():
    cfg = Selection.resolve("dadc", "multi_access_broadcast", plugin_manager()).compose()
    assert cfg.trainer.total_steps == 480_000 and cfg.algo.lr_schedule == "three_timescale"


@needs_teams
def test_hundred_device_copies_stay_identical():
    """Demand response with every one of the 100 devices running its own coordinator."""
    from safenet_teams.demand_response import make

    game = make({"episode_length": 10}, num_envs=2, seed=0)
    algo = algo_for(game, prescription="gaussian", ais="common_obs", hidden=[16], ppo_epochs=2)
    assert algo.C == 100 and algo.space.blocks == 1
    thetas = run_iterations(game, algo, 2)
    assert algo.copy_divergence() == 0.0
    assert (thetas == thetas[:, :, :1]).all()
