"""Tests of the PPO-family plugin (ippo, mappo, happo, mappo-l, dec-mappo-l).

Unit tests build the algorithms directly on small specs and compare what they compute with hand
values; integration tests go through the trainer with an in-process plugin manager (the plugin, the
core's ``toy_line`` and this plugin's continuous ``toy_reach``), so they do not depend on what else
is installed. ``-m slow`` adds a learning check (mappo-l vs ippo on the cost limit).
"""
from __future__ import annotations

import copy
import csv
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import safenet.testing
from safenet.errors import ConfigError
from safenet.graph import Graph
from safenet.lagrange import LagrangeConfig
from safenet.plugins import PluginManager
from safenet.rollout import Collector, Rollout
from safenet.testing import ToyConfig, ToyLineGame, check_algorithm
from safenet.trainer import Selection, start_run

import safenet_mappo_l.plugin as plugin
import safenet_mappo_l.testing as mltesting
from safenet_mappo_l.algorithm import HAPPO, IPPO, MAPPO, MAPPOL, DecMAPPOL, auto_rollout_steps
from safenet_mappo_l.config import DecSafePPOConfig, PPOConfig, SafePPOConfig
from safenet_mappo_l.testing import ReachConfig, ReachGame

ROOT = Path(__file__).resolve().parents[1]
ALGOS = ["ippo", "mappo", "happo", "mappo-l", "dec-mappo-l"]


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch):
    for var in ("SAFENET_PLUGINS", "SAFENET_STRICT_PLUGINS", "SAFENET_DISABLE_PLUGIN_AUTOLOAD",
                "SAFENET_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def pm() -> PluginManager:
    return PluginManager(autoload=False, strict=True, plugins=[
        ("safenet_mappo_l", plugin), ("safenet.testing", safenet.testing), ("safenet_mappo_l.testing", mltesting)])


def toy(n: int, num_envs: int = 2, seed: int = 0, episode_length: int = 8) -> ToyLineGame:
    return ToyLineGame(ToyConfig(n_agents=n, episode_length=episode_length), num_envs=num_envs, seed=seed)


def rollout_of(algo, game, steps: int, seed: int = 0) -> Rollout:
    return Collector(game, seed=seed).collect(algo, steps)[0]


def params(algo) -> dict[str, torch.Tensor]:
    algo.wait()                                       # a critic update may still run in the background
    out = {f"policy.{k}": v for k, v in algo.policy.state_dict().items()}
    out.update({f"critic.{k}": v for k, v in algo.critic.state_dict().items()})
    if algo.cost_critic is not None:
        out.update({f"cost_critic.{k}": v for k, v in algo.cost_critic.state_dict().items()})
    return out


def zero_output_layer(mlp, bias: torch.Tensor | None = None) -> None:
    mlp = getattr(mlp, "net", mlp)                    # a StackedPolicy's StackedMLP
    last = len(mlp.layers) - 1
    with torch.no_grad():
        mlp.weight(last).zero_()
        b = mlp.bias(last)
        b.copy_(bias if bias is not None else torch.zeros_like(b))


# ------------------------------------------------------------------------------------------------
# registration and the trainer
# ------------------------------------------------------------------------------------------------

def test_registers_the_family(pm):
    classes = {"ippo": IPPO, "mappo": MAPPO, "happo": HAPPO, "mappo-l": MAPPOL, "dec-mappo-l": DecMAPPOL}
    for name, cls in classes.items():
        assert pm.algorithm(name).load() is cls
    assert pm.algorithm("dec_mappo_l").config is DecSafePPOConfig
    assert pm.algorithm("mappo-l").config is SafePPOConfig and pm.algorithm("ippo").config is PPOConfig
    # the scheme each name stands for
    assert (IPPO.scope, IPPO.sequential, IPPO.constrained) == ("local", False, False)
    assert (MAPPO.scope, MAPPO.sequential) == ("global", False)
    assert (HAPPO.scope, HAPPO.sequential, HAPPO.constrained) == ("global", True, False)
    assert (MAPPOL.scope, MAPPOL.sequential, MAPPOL.constrained) == ("global", True, True)
    assert (DecMAPPOL.scope, DecMAPPOL.sequential, DecMAPPOL.constrained) == ("kappa", True, True)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is new in Python 3.11")
def test_entry_point_is_declared():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "safenet-mappo-l"
    assert meta["project"]["entry-points"]["safenet"] == {"safenet_mappo_l": "safenet_mappo_l.plugin"}


@pytest.mark.parametrize("env", ["toy_line", "toy_reach"])
@pytest.mark.parametrize("algo", ALGOS)
def test_check_algorithm(algo, env, pm, tmp_path):
    row = check_algorithm(algo, env, tmp_path, overrides=["trainer.rollout_steps=16", "trainer.torch_threads=1"], pm=pm)
    assert math.isfinite(row["train/loss_policy"]) and math.isfinite(row["train/loss_value"])
    assert "comm/floats_per_update" in row
    if algo.endswith("mappo-l"):
        assert row["train/lagrange/" + ("uses" if env == "toy_line" else "fast_moves")] >= 0.0


def test_centralized_critic_on_the_env_state_and_its_refusals(pm, tmp_path):
    check_algorithm("mappo-l", "toy_reach", tmp_path / "a", overrides=["algo.critic_input=state"], pm=pm)
    sel = Selection.resolve("dec-mappo-l", "toy_line", pm)
    cfg = sel.compose(overrides=[f"run.dir={tmp_path / 'b'}", "run.progress=none", "run.tensorboard=false",
                                 "algo.critic_input=state"])
    with pytest.raises(ConfigError, match="algo.critic_input='state' needs a centralized critic"):
        start_run(sel, cfg, pm=pm)


@pytest.mark.parametrize("override, message", [
    ("algo.reward=teem", "algo.reward must be one of 'team', 'neighbourhood', 'own', got 'teem'"),
    ("algo.kappa=-1", "algo.kappa must be an integer >= 0"),
    ("algo.lagrange.method=pd", "algo.lagrange.method must be one of 'gradient', 'pid'"),
    ("algo.clip=0", "algo.clip must be positive"),
    ("algo.minibatches=0", "algo.minibatches must be >= 1"),
])
def test_bad_config_values_name_the_key_and_the_choices(pm, override, message):
    sel = Selection.resolve("dec-mappo-l", "toy_line", pm)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        sel.compose(overrides=[override])


def test_training_writes_curves_with_costs_multipliers_and_communication(pm, tmp_path):
    sel = Selection.resolve("dec-mappo-l", "toy_line", pm)
    cfg = sel.compose(overrides=[f"run.dir={tmp_path}", "run.progress=none", "run.tensorboard=false",
                                 "trainer.total_steps=600", "trainer.eval_every_steps=-1", "trainer.n_envs=2",
                                 "env.n_agents=8"])
    trainer = start_run(sel, cfg, pm=pm)
    trainer.train()
    with open(trainer.run.dir / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3                                          # 128 steps (auto) x 2 copies per iteration
    for key in ("rollout/ep_return", "rollout/ep_cost/uses", "train/lagrange/uses", "comm/floats_per_update",
                "train/stages", "time/update_s"):
        assert rows[-1][key] != "", key
    assert float(rows[-1]["train/stages"]) < 8                    # κ = 2 on an 8-line: fewer stages than agents


# ------------------------------------------------------------------------------------------------
# hand-computed values
# ------------------------------------------------------------------------------------------------

def test_rollout_length_is_whole_episodes_of_at_least_128_steps():
    assert auto_rollout_steps(8) == 128 and auto_rollout_steps(11) == 132
    assert auto_rollout_steps(600) == 600 and auto_rollout_steps(5000) == 1000
    algo = IPPO(toy(2).spec, PPOConfig(rollout_steps=24))
    assert algo.rollout_steps == 24


def test_policy_objective_matches_hand_values():
    """Eq. 22 per agent: ratio, clip and correction factor, with policies set to known probabilities."""
    algo = HAPPO(toy(2).spec, PPOConfig(clip=0.2))
    # agent 0: p = (0.25, 0.75); agent 1: p = (0.5, 0.5)
    zero_output_layer(algo.policy, torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]]))
    # agent-major inputs [n, samples, ...]
    pin = torch.zeros(2, 3, 2)
    actions = torch.tensor([[1, 0], [0, 1], [1, 1]]).T
    p_old = torch.tensor([[0.5, 0.25], [0.5, 0.5], [0.75, 0.625]]).T   # ratios (1.5, 2), (0.5, 1), (1, 0.8)
    adv = torch.tensor([[1.0, 1.0], [-2.0, 1.0], [3.0, -1.0]]).T
    corr = torch.tensor([[1.0, 2.0], [1.0, 0.5], [1.0, 1.0]]).T
    surr, ent = algo.policy_objective(pin, actions, p_old.log(), adv, corr)
    # agent 0: min(1.5, 1.2)·1 = 1.2; min(0.5·-2, 0.8·-2) = -1.6; 1·3 = 3
    # agent 1: M·A = 2, 0.5, -1 → min(2·2, 1.2·2) = 2.4; 0.5; min(0.8·-1, 0.8·-1) = -0.8
    torch.testing.assert_close(surr, torch.tensor([(1.2 - 1.6 + 3.0) / 3, (2.4 + 0.5 - 0.8) / 3]))
    h0 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    torch.testing.assert_close(ent, torch.tensor([h0, math.log(2.0)]))
    # the same for agent 1 alone (a stage of one agent)
    one = torch.tensor([1])
    surr1, _ = algo.policy_objective(pin[one], actions[one], p_old.log()[one], adv[one], corr[one],
                                     algo.policy.flat[one], one)
    torch.testing.assert_close(surr1, surr[1:])


def test_advantages_are_gae_of_the_neighbourhood_reward_against_hand_values():
    spec = toy(3).spec                               # line 0 - 1 - 2
    algo = DecMAPPOL(spec, DecSafePPOConfig(kappa=1, gamma=0.9, gae_lambda=0.5, advantage_norm=False,
                                            reward_scale=2.0))
    zero_output_layer(algo.critic)                  # V = 0 everywhere
    zero_output_layer(algo.cost_critic)
    reward = np.array([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]]])      # [T=3, B=1, n=3]
    trunc = np.array([[False], [True], [True]])
    ro = Rollout(obs=np.zeros((3, 1, 3, 2)), actions=np.zeros((3, 1, 3), dtype=np.int64), reward=reward,
                 cost=reward[..., None].copy(), terminated=np.zeros((3, 1), dtype=bool), truncated=trunc,
                 next_obs=np.zeros((3, 1, 3, 2)))
    out = algo.advantages(ro)
    # r̃_i = mean over N_i^1 (x2 scale): agent 0 {0,1}: 1, 1, 0; agent 1 {0,1,2}: 2/3 each; agent 2 {1,2}: 0, 1, 1
    # A_t = r̃_t + γλ (1 - done_t) A_{t+1}, γλ = 0.45, trace cut after t = 1
    expected = np.array([[1 + 0.45 * 1, 2 / 3 + 0.45 * 2 / 3, 0 + 0.45 * 1],
                         [1.0, 2 / 3, 1.0],
                         [0.0, 2 / 3, 1.0]])
    np.testing.assert_allclose(out["reward_adv"], expected)
    np.testing.assert_allclose(out["returns"], expected)
    # the cost advantage uses agent i's own cost only (unscaled): 1, 0, 0 for agent 0 ...
    np.testing.assert_allclose(out["cost_adv"][..., 0], [[1.0, 0.45, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # λ = 0: the combined advantage is the reward advantage (Eq. 21)
    np.testing.assert_allclose(out["advantage"], expected)
    algo.lagrange.value[:] = np.array([[1.0], [0.0], [3.0]])
    comb = algo.advantages(ro)["advantage"]
    np.testing.assert_allclose(comb[:, 0], (expected[:, 0] - np.array([1.0, 0.0, 0.0])) / 2.0)
    np.testing.assert_allclose(comb[:, 1], expected[:, 1])
    np.testing.assert_allclose(comb[:, 2], (expected[:, 2] - 3.0 * np.array([0.0, 0.0, 1.0])) / 4.0)


def test_lagrange_multiplier_rises_above_the_limit_and_falls_to_zero_below_it():
    game = toy(2, num_envs=2)                         # limit: 3 uses per 8-step episode
    algo = MAPPOL(game.spec, SafePPOConfig(rollout_steps=8))
    ro = rollout_of(algo, game, 8)
    ro.cost = np.ones_like(ro.cost)                   # 8 per episode: violated by 5
    m = algo.update(ro)
    np.testing.assert_allclose(algo.lagrange.value, 0.05 * 5)
    assert m["train/lagrange/uses"] == pytest.approx(0.25)
    ro.cost = np.zeros_like(ro.cost)                  # 0 per episode: satisfied by 3
    algo.update(ro)
    np.testing.assert_allclose(algo.lagrange.value, 0.25 - 0.15)
    algo.update(ro)
    np.testing.assert_allclose(algo.lagrange.value, 0.0)    # never below 0


def test_communication_volumes_by_hand():
    spec = toy(4).spec                                # line of 4, obs 2; Σ_i (|N_i^1| - 1) = 6
    game = toy(4, num_envs=2)
    dec = DecMAPPOL(spec, DecSafePPOConfig(kappa=1, rollout_steps=8))
    dec.update(rollout_of(dec, game, 8))
    preds = int(dec.last_plan.predecessor_mask().sum())
    S = 16
    assert dec.communication() == {"floats_per_step": 0.0, "floats_per_update": (6 * 2 + 6 + preds) * S}
    cen = MAPPOL(spec, SafePPOConfig(rollout_steps=8))
    cen.update(rollout_of(cen, game, 8))
    # all 3 others' observations and rewards for each of 4 agents; 0 + 1 + 2 + 3 predecessors
    assert cen.communication()["floats_per_update"] == (12 * 2 + 12 + 6) * S
    ippo = IPPO(spec, PPOConfig(rollout_steps=8))
    ippo.update(rollout_of(ippo, game, 8))
    assert ippo.communication()["floats_per_update"] == 12 * S     # the team reward only
    nbr = DecMAPPOL(spec, DecSafePPOConfig(kappa=1, policy_input="neighbourhood"))
    assert nbr.communication()["floats_per_step"] == 6 * 2


# ------------------------------------------------------------------------------------------------
# the κ-hop scheme
# ------------------------------------------------------------------------------------------------

def test_with_kappa_at_least_the_diameter_dec_mappo_l_updates_exactly_like_mappo_l():
    game = toy(5, num_envs=3)                         # line of 5: diameter 4
    cen = MAPPOL(game.spec, SafePPOConfig(rollout_steps=16), seed=7)
    ro = rollout_of(cen, game, 16)
    before = {k: v.clone() for k, v in params(cen).items()}
    full = DecMAPPOL(game.spec, DecSafePPOConfig(kappa=4, rollout_steps=16), seed=7)
    short = DecMAPPOL(game.spec, DecSafePPOConfig(kappa=1, rollout_steps=16), seed=7)
    for k, v in params(full).items():
        assert torch.equal(v, before[k]), k                           # same seed: same networks
    cen.update(ro)
    full.update(ro)
    short.update(ro)
    assert cen.last_plan == full.last_plan
    after, dec_after, short_after = params(cen), params(full), params(short)
    assert any(not torch.equal(after[k], before[k]) for k in after)   # the update did something
    for k in after:
        torch.testing.assert_close(dec_after[k], after[k], rtol=0, atol=1e-6, msg=k)
    np.testing.assert_allclose(full.lagrange.value, cen.lagrange.value)
    # κ = 1 reads less: its critics have other input sizes and its policies end elsewhere
    assert short.critic.in_features < cen.critic.in_features
    assert any(not torch.allclose(short_after[k], after[k]) for k in after if k.startswith("policy."))


def test_an_agents_kappa_hop_inputs_ignore_agents_outside_its_neighbourhood():
    spec = toy(6).spec                                # line of 6; N_0^1 = {0, 1}
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(5, 6, 2)).astype(np.float32)
    far = obs.copy()
    far[:, 2:] += rng.normal(size=(5, 4, 2)).astype(np.float32)      # agents 2..5 change
    dec = DecMAPPOL(spec, DecSafePPOConfig(kappa=1, policy_input="neighbourhood"))
    cen = MAPPOL(spec, SafePPOConfig())
    for algo in (dec, cen):
        x, y = algo.normalize_obs(obs), algo.normalize_obs(far)
        v, cv = algo.values(obs)
        v2, cv2 = algo.values(far)
        same_value = np.array_equal(v[:, 0], v2[:, 0]) and np.array_equal(cv[:, 0], cv2[:, 0])
        same_policy = torch.equal(algo.policy.net(algo.policy_input(x))[0], algo.policy.net(algo.policy_input(y))[0])
        if algo is dec:
            assert same_value and same_policy
            assert not np.array_equal(v[:, 1], v2[:, 1])                # agent 2 ∈ N_1^1 changed
        else:
            assert not same_value                                        # the centralized critic reads all
            assert same_policy                                           # local policies read o_0 only
    # advantages: rewards, costs and observations of agents outside N_0^1 do not reach agent 0's
    T, B = 4, 2
    ro = Rollout(obs=rng.normal(size=(T, B, 6, 2)), actions=np.zeros((T, B, 6), dtype=np.int64),
                 reward=rng.normal(size=(T, B, 6)), cost=rng.random((T, B, 6, 1)),
                 terminated=np.zeros((T, B), dtype=bool), truncated=np.eye(T, B, k=-2, dtype=bool),
                 next_obs=rng.normal(size=(T, B, 6, 2)))
    ro2 = copy.deepcopy(ro)
    for arr in (ro2.obs, ro2.next_obs, ro2.reward, ro2.cost):
        arr[:, :, 2:] = rng.normal(size=arr[:, :, 2:].shape)
    dec.lagrange.value[:] = 0.5
    a, a2 = dec.advantages(ro)["advantage"], dec.advantages(ro2)["advantage"]
    np.testing.assert_array_equal(a[:, 0], a2[:, 0])
    assert not np.array_equal(a[:, 1], a2[:, 1])


def test_the_correction_factor_uses_only_already_updated_agents_inside_the_neighbourhood():
    game = toy(6, num_envs=4)                         # line of 6, κ = 1
    algo = DecMAPPOL(game.spec, DecSafePPOConfig(kappa=1, rollout_steps=16, epochs=2, minibatches=2), seed=3)
    ro = rollout_of(algo, game, 16)
    S, n = 64, 6
    pin = algo.policy_input(algo.normalize_obs(ro.obs))                 # [n, S, in]
    actions = torch.as_tensor(ro.actions.reshape(S, n).T)
    old = copy.deepcopy(algo.policy)
    factors: list[torch.Tensor] = []                  # log M of each stage's agents [k, S], in stage order
    original = algo.nbr.select_sum
    algo.nbr.select_sum = lambda values, select, agents: factors.append(original(values, select, agents)) or factors[-1]
    algo.update(ro)
    plan = algo.last_plan
    assert len(factors) == len(plan.stages) < n                       # some agents updated together
    dist = game.spec.graph.distances
    for stage in plan.stages:                                         # members of a stage are > 2κ apart
        assert all(i == j or dist[i, j] > 2 for i in stage for j in stage)
    with torch.no_grad():
        lr = algo.policy.log_prob_entropy(pin, actions)[0] - old.log_prob_entropy(pin, actions)[0]   # [n, S]
    within = game.spec.graph.within(1)
    for stage, log_m in zip(plan.stages, factors):
        for k, i in enumerate(stage):
            preds = plan.predecessors[i]
            assert set(preds) == {j for j in range(n) if within[i, j] and j != i and plan.stage_of[j] < plan.stage_of[i]}
            # M_i = Π over i's already-updated neighbours of their final new/old ratios (they never move again)
            expected = lr[list(preds)].sum(0) if preds else torch.zeros(S)
            torch.testing.assert_close(log_m[k], expected, rtol=0, atol=1e-5)
    assert any(plan.predecessors[i] for i in range(n))


def test_continuous_actions_are_clipped_for_the_env_and_learned_from_the_raw_sample():
    game = ReachGame(ReachConfig(n_agents=3), num_envs=4, seed=0)
    algo = DecMAPPOL(game.spec, DecSafePPOConfig(kappa=1, init_log_std=1.0, rollout_steps=10))
    obs, info = game.reset(seed=0)
    env_a, extras = algo.act(obs, info)
    raw = extras["raw_action"]
    assert env_a.shape == raw.shape == (4, 3, 2)
    assert np.all(np.abs(env_a) <= 1.0) and np.any(np.abs(raw) > 1.0)
    assert np.all(env_a[:, 1, 1] == 0.0) and np.all(raw[:, 1, 1] == 0.0)   # agent 1 acts in 1 dimension
    np.testing.assert_allclose(env_a, np.clip(raw, -1, 1))
    det, _ = algo.act(obs, info, deterministic=True)
    det2, _ = algo.act(obs, info, deterministic=True)
    np.testing.assert_array_equal(det, det2)
    m = algo.update(rollout_of(algo, game, 10))
    assert math.isfinite(m["train/loss_policy"])


def test_state_dict_round_trip_continues_identically():
    game = toy(4, num_envs=2)
    a = DecMAPPOL(game.spec, DecSafePPOConfig(kappa=1, rollout_steps=16), seed=1)
    a.update(rollout_of(a, game, 16))
    b = DecMAPPOL(game.spec, DecSafePPOConfig(kappa=1, rollout_steps=16), seed=99)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    ro = rollout_of(a, toy(4, num_envs=2, seed=5), 16, seed=5)
    a.update(ro)
    b.update(ro)
    for k, v in params(a).items():
        assert torch.equal(v, params(b)[k]), k
    np.testing.assert_array_equal(a.lagrange.value, b.lagrange.value)


# ------------------------------------------------------------------------------------------------
# learning (short versions run by default; -m slow for the constraint check)
# ------------------------------------------------------------------------------------------------

def _train(pm, tmp_path, algo: str, steps: int, seed: int = 0, extra=(), env: str = "toy_line") -> list[dict]:
    sel = Selection.resolve(algo, env, pm)
    cfg = sel.compose(overrides=[f"run.dir={tmp_path}", "run.progress=none", "run.tensorboard=false",
                                 f"trainer.total_steps={steps}", "trainer.eval_every_steps=-1", "trainer.n_envs=8",
                                 "trainer.torch_threads=1", f"seed={seed}", *extra])
    trainer = start_run(sel, cfg, pm=pm)
    trainer.train()
    with open(trainer.run.dir / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_happo_learns_the_toy_game(pm, tmp_path):
    rows = _train(pm, tmp_path, "happo", 12_000)
    first, last = float(rows[0]["rollout/ep_return"]), float(rows[-1]["rollout/ep_return"])
    assert last > first + 1.0, (first, last)        # reward 1[a_i = s_i] per step: random play earns 4 of 8


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known issue: on toy_line the team-reward policy turns deterministic (entropy "
                   "< 0.01) within ~20k steps, before the multipliers (PID, λ ≈ 0.5 at 60k steps) grow large "
                   "enough; mappo-l ends at 3.8 uses per episode against the limit 3 (ippo: above 3.3 too)")
def test_mappo_l_keeps_the_cost_limit_that_ippo_breaks(pm, tmp_path, request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow learning check: run with `pytest -m slow`")
    # toy_line: the unconstrained optimum uses action 1 about 4 times per 8-step episode; the limit is 3
    def tail_cost(rows):
        return float(np.mean([float(r["rollout/ep_cost/uses"]) for r in rows[-5:]]))

    ippo = _train(pm, tmp_path / "ippo", "ippo", 60_000)
    safe = _train(pm, tmp_path / "mappo-l", "mappo-l", 60_000, extra=["algo.lagrange.method=pid"])
    assert tail_cost(ippo) > 3.3
    assert tail_cost(safe) <= 3.0 + 0.2


@pytest.mark.slow
def test_lagrangian_holds_the_velocity_limit_on_safe_hopper(tmp_path):
    """Full check (about 2 min on one core): Safe Hopper 3x1 with its velocity cost (1 per step above
    0.9613 m/s, limit 25 per episode), found through the installed env plugin's entry point. Over the
    last tenth of 150k env steps, ``ippo`` pays more than twice the limit, while ``mappo-l`` with the
    PID multiplier stays within a quarter of it: the PID multiplier tracks the limit, so single
    iterations land on either side of it (docs/reports/mappo_l.md §6 has the 3-seed, 1M-step runs)."""
    pytest.importorskip("safenet_mamujoco")
    real = PluginManager()                       # entry points: the mappo-l and safe-mamujoco plugins

    def tail_cost(algo: str, extra: list[str]) -> float:
        rows = _train(real, tmp_path / algo, algo, 150_000, extra=["algo.rollout_steps=250", *extra],
                      env="safety_hopper_3x1_velocity")
        tail = [float(r["rollout/ep_cost/velocity"]) for r in rows[-len(rows) // 10:] if r.get("rollout/ep_cost/velocity")]
        return float(np.mean(tail))

    ippo = tail_cost("ippo", [])
    safe = tail_cost("mappo-l", ["algo.lagrange.method=pid"])
    assert ippo > 2 * 25, f"ippo stayed near the limit ({ippo:.1f}); the check would prove nothing"
    assert safe <= 1.25 * 25, (safe, ippo)


def test_penalty_in_reward_units_combines_raw_advantages_then_standardises():
    spec = toy(3).spec
    rng = np.random.default_rng(0)
    T, B, n = 6, 2, 3
    reward = rng.normal(size=(T, B, n)) * 5.0          # reward and cost on very different scales
    cost = (rng.random((T, B, n, 1)) < 0.3).astype(float)
    ro = Rollout(obs=np.zeros((T, B, n, 2)), actions=np.zeros((T, B, n), dtype=np.int64), reward=reward, cost=cost,
                 terminated=np.zeros((T, B), dtype=bool), truncated=np.zeros((T, B), dtype=bool),
                 next_obs=np.zeros((T, B, n, 2)))
    lam = np.array([[0.5], [0.0], [2.0]])
    outs = {}
    for units in ("std", "reward"):
        algo = DecMAPPOL(spec, DecSafePPOConfig(kappa=1, gamma=0.9, gae_lambda=0.5, penalty_units=units))
        zero_output_layer(algo.critic)
        zero_output_layer(algo.cost_critic)
        raw = algo.advantages(ro)                     # λ = 0 first
        algo.lagrange.value[:] = lam
        outs[units] = (raw, algo.advantages(ro)["advantage"])
    # the raw GAE advantages, recovered with advantage_norm off
    algo = DecMAPPOL(spec, DecSafePPOConfig(kappa=1, gamma=0.9, gae_lambda=0.5, advantage_norm=False))
    zero_output_layer(algo.critic)
    zero_output_layer(algo.cost_critic)
    plain = algo.advantages(ro)
    a_r, a_c = plain["reward_adv"], plain["cost_adv"][..., 0]
    z = lambda x: (x - x.mean(0)) / (x.std(0) + 1e-8)
    np.testing.assert_allclose(outs["reward"][1], z(a_r - lam[:, 0] * a_c), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(outs["std"][1], (z(a_r) - lam[:, 0] * z(a_c)) / (1 + lam[:, 0]), rtol=1e-6, atol=1e-6)
    # agent 1 has λ = 0: both give its standardised reward advantage
    np.testing.assert_allclose(outs["reward"][1][:, 1], z(a_r)[:, 1], rtol=1e-6, atol=1e-6)


def test_reward_rate_cap_bounds_each_lambda_by_its_agents_reward_per_step():
    """algo.lagrange_cap="reward_rate": λ_i ≤ max(lagrange.max_value, agent i's mean learning reward per
    step), so a multiplier that the violation pushes up stops there, per agent; "fixed" keeps max_value."""
    spec = toy(3).spec
    T, B, n = 8, 2, 3
    reward = np.broadcast_to(np.array([0.2, 2.5, 4.0]), (T, B, n)).copy()   # per step, per agent
    cost = np.ones((T, B, n, 1))                                            # every step unsafe
    done = np.zeros((T, B), dtype=bool)
    done[-1] = True                                                          # episodes end: λ steps
    ro = Rollout(obs=np.zeros((T, B, n, 2)), actions=np.zeros((T, B, n), dtype=np.int64), reward=reward, cost=cost,
                 terminated=done, truncated=np.zeros((T, B), dtype=bool), next_obs=np.zeros((T, B, n, 2)))
    lam = {}
    for cap in ("fixed", "reward_rate"):
        cfg = DecSafePPOConfig(kappa=0, penalty_units="reward", lagrange_cap=cap,
                               lagrange=LagrangeConfig(lr=100.0, max_value=1.0))
        algo = DecMAPPOL(spec, cfg)
        algo.update_multipliers(ro)
        lam[cap] = algo.lagrange.value[:, 0].copy()
    np.testing.assert_allclose(lam["fixed"], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(lam["reward_rate"], [1.0, 2.5, 4.0])          # max(1, r̄_i)


def test_reward_rate_cap_needs_lambda_in_reward_units():
    with pytest.raises(ValueError, match="lagrange_cap='reward_rate'.*penalty_units='reward'.*lagrange_cap='fixed'"):
        SafePPOConfig(lagrange_cap="reward_rate")
    with pytest.raises(ValueError, match="lagrange_cap.*'fixed', 'reward_rate'.*'auto'"):
        SafePPOConfig(lagrange_cap="auto")


def test_penalty_units_rejects_unknown_values():
    with pytest.raises(ValueError, match="penalty_units.*'std', 'reward'.*'raw'"):
        SafePPOConfig(penalty_units="raw")


def test_a_learning_rate_given_on_resume_takes_effect(pm, tmp_path):
    """``--resume RUN algo.actor_lr=...``: the optimisers keep their moments but take the new rates."""
    from safenet.trainer import resume_run

    _train(pm, tmp_path, "mappo-l", 600, extra=["run.name=r", "trainer.checkpoint_every=1"])
    trainer = resume_run(tmp_path / "r", ["algo.actor_lr=0.0123", "algo.critic_lr=0.0456",
                                         "trainer.total_steps=1200"], pm=pm)
    algo = trainer.algo
    assert algo.policy_opt.lr == 0.0123 and algo.critic_opt.lr == 0.0456 and algo.cost_opt.lr == 0.0456
    assert int(algo.policy_opt.steps.max()) > 0                     # the moments came from the checkpoint


# ------------------------------------------------------------------------------------------------
# parameter sharing
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env", ["toy_line", "toy_reach"])
@pytest.mark.parametrize("algo", ALGOS)
def test_share_parameters_trains_end_to_end(algo, env, pm, tmp_path):
    row = check_algorithm(algo, env, tmp_path, pm=pm, overrides=[
        "trainer.rollout_steps=16", "trainer.torch_threads=1", "algo.share_parameters=true"])
    assert math.isfinite(row["train/loss_policy"]) and math.isfinite(row["train/loss_value"])
    assert row["train/stages"] == 1.0                  # one network: all agents update at once


def test_shared_networks_have_one_row_and_learn_from_every_agent():
    game = toy(6, num_envs=2)
    algo = DecMAPPOL(game.spec, DecSafePPOConfig(kappa=1, share_parameters=True, critic_overlap=False), seed=0)
    per_agent = DecMAPPOL(game.spec, DecSafePPOConfig(kappa=1), seed=0)
    assert algo.policy.flat.shape[0] == 1 and algo.critic.flat.shape[0] == 1
    assert algo.policy.flat.shape[1] == per_agent.policy.flat.shape[1]           # same network, O(1) rows
    # the shared policy is the same function for every agent: equal inputs, equal action probabilities
    x = torch.randn(1, 5, algo.policy.net.in_features).expand(6, -1, -1)
    a = torch.zeros(6, 5, dtype=torch.long)
    logp, _ = algo.policy.log_prob_entropy(x, a)
    torch.testing.assert_close(logp, logp[:1].expand(6, -1))
    before = {k: v.clone() for k, v in params(algo).items()}
    algo.update(rollout_of(algo, game, 16))
    after = params(algo)
    assert all(not torch.equal(before[k], after[k]) for k in ("policy.net.flat", "critic.flat"))
    # the acting copy computes what the torch policy computes
    obs = np.random.default_rng(0).normal(size=(3, 6, game.spec.obs_dim)).astype(np.float32)
    acts, extras = algo.act(obs, {})
    pin = algo.policy_input(algo.normalize_obs(obs))
    lp, _ = algo.policy.log_prob_entropy(pin, torch.as_tensor(acts.T))
    np.testing.assert_allclose(extras["logp"], lp.T.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_chunked_no_grad_passes_equal_the_whole_batch():
    """Values and log-probabilities computed in chunks of samples (large n) equal the one-chunk pass."""
    game = toy(5, num_envs=2)
    cfg = DecSafePPOConfig(kappa=1, critic_overlap=False)
    whole, chunked = DecMAPPOL(game.spec, cfg, seed=3), DecMAPPOL(game.spec, cfg, seed=3)
    chunked.chunk_floats = 5 * 64 * 3                   # 3 samples per chunk
    assert len(chunked.sample_chunks(16)) == 6 and len(whole.sample_chunks(16)) == 1
    roll = rollout_of(whole, game, 16)
    v1, c1 = whole.values(roll.obs)
    v2, c2 = chunked.values(roll.obs)
    np.testing.assert_allclose(v1, v2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(c1, c2, rtol=1e-6, atol=1e-6)
    whole.update(roll)
    chunked.update(roll)
    for k, v in params(whole).items():
        torch.testing.assert_close(params(chunked)[k], v, rtol=1e-5, atol=1e-6)
