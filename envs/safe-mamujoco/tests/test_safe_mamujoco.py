"""Tests of the Safe MAMuJoCo games: registration, protocol, graphs, costs, bad input, PettingZoo, rendering."""
from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

import safenet.testing
from safenet.errors import ConfigError, RegistryError, SafenetError
from safenet.plugins import PluginManager
from safenet.testing import check_game
from safenet_mamujoco import plugin
from safenet_mamujoco.config import FAMILIES, NAMED_TASKS
from safenet_mamujoco.game import MamujocoGame, bomb_control, make, make_task, parallel_env
from safenet_mamujoco.models import BOMB_START, corridor_centre

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pm(monkeypatch):
    monkeypatch.delenv("SAFENET_PLUGINS", raising=False)
    return PluginManager(autoload=False, strict=True, plugins=[("safenet_mamujoco", plugin),
                                                                ("safenet.testing", safenet.testing)])


def rest(game: MamujocoGame, **joints: float) -> tuple[np.ndarray, np.ndarray]:
    """The model's rest pose with some qpos entries replaced (``root_y=4.0`` sets qpos[root + 1])."""
    import mujoco

    m = game.model
    qpos, qvel = m.qpos0.copy(), np.zeros(m.nv)
    for key, value in joints.items():
        name, _, part = key.rpartition("_") if key.endswith(("_x", "_y", "_z")) else (key, "", "")
        adr = int(m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)])
        qpos[adr + {"": 0, "x": 0, "y": 1, "z": 2}[part]] = value
    return qpos, qvel


def zero_actions(game: MamujocoGame) -> np.ndarray:
    return np.zeros((game.num_envs, game.spec.n, game.spec.action_dim))


# -- registration ---------------------------------------------------------------------------------

def test_entry_point_is_declared():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["safenet"] == {"safenet_mamujoco": "safenet_mamujoco.plugin"}
    assert meta["project"]["name"] == "safenet-mamujoco"
    assert "gymnasium-robotics>=1.3" in meta["project"]["optional-dependencies"]["test"]
    assert not any("gymnasium" in d or "safety" in d for d in meta["project"]["dependencies"])


def test_public_names_resolve(pm):
    for name in ("safe_manyagent_ant_2x3", "safe_manyagent_ant_3x2", "safe_manyagent_ant_6x1", "safe_ant_8x1",
                 "safe_coupled_halfcheetah_12x1", "safety_ant_2x4_velocity", "safety_halfcheetah_6x1_velocity"):
        spec, implied = pm.environment(name)
        assert implied == {} and spec.defaults == {"family": NAMED_TASKS[name][0], "partition": NAMED_TASKS[name][1]}
        assert {"continuous", "global_state", "constrained"} <= spec.tags
    spec, implied = pm.environment("safe-manyagent-ant-4x3")          # another partition of the family
    assert implied == {"partition": "4x3"} and spec.defaults == {"family": "safe_manyagent_ant", "partition": "2x3"}
    with pytest.raises(RegistryError, match="unknown environment 'safe_ant_9x9x'"):
        pm.environment("safe_ant_9x9x")


def test_every_registered_spec_composes_by_default(pm):
    """What ``safenet doctor`` checks: each spec's own name resolves and its defaults build a game."""
    from safenet_mamujoco.config import MamujocoConfig

    for reg in pm.environments:
        if reg.plugin.name != "safenet_mamujoco":
            continue
        spec, implied = pm.environment(reg.spec.name)
        make(MamujocoConfig(**{**spec.defaults, **implied}))


def test_bad_task_and_partition_are_clear_errors():
    with pytest.raises(RegistryError, match="unknown Safe MAMuJoCo task 'safe_ant_8x2x'.*safe_ant_8x1"):
        make_task("safe_ant_8x2x")
    with pytest.raises(ConfigError, match=r"env.partition: safe_ant has no partition '3x3'; valid choices: 8x1"):
        make_task("safe_ant_3x3")
    with pytest.raises(ConfigError, match="env.family: unknown task family 'nope'"):
        make({"family": "nope"})
    with pytest.raises(ConfigError, match="env.partition must look like"):
        make({"family": "safe_manyagent_ant", "partition": "six"})
    with pytest.raises(ConfigError, match="unknown Safe MAMuJoCo config keys"):
        make({"partitoin": "2x3"})
    with pytest.raises(ConfigError, match="env.agent_obsk must be an integer >= 0"):
        make({"agent_obsk": -1})


# -- protocol ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(NAMED_TASKS))
def test_every_task_follows_the_protocol(name):
    game = make_task(name, num_envs=2, seed=0, episode_length=25)
    check_game(game, steps=60)
    obs, info = game.reset(seed=1)
    assert obs.dtype == np.float32 and info["state"].shape == (2, game.spec.state_dim)
    np.testing.assert_array_equal(info["state"], game.state())
    game.close()


def test_graphs_follow_the_joint_structure():
    ant = make_task("safe_ant_8x1").spec
    joints = [p[0] for p in make_task("safe_ant_8x1").parts]
    assert joints == ["hip_1", "ankle_1", "hip_2", "ankle_2", "hip_3", "ankle_3", "hip_4", "ankle_4"]
    hips, ankles = [0, 2, 4, 6], [1, 3, 5, 7]
    adj = ant.graph.distances == 1
    assert all(adj[h, g] for h in hips for g in hips if h != g)                 # hips meet at the torso
    assert all(adj[a, a - 1] and adj[a].sum() == 1 for a in ankles)            # an ankle touches its hip only
    assert ant.graph.diameter == 3
    many = make_task("safe_manyagent_ant_6x1").spec
    assert [sorted(np.flatnonzero(many.graph.distances[i] == 1)) for i in range(6)] == \
        [[1], [0, 2], [1, 3], [2, 4], [3, 5], [4]]                              # segments form a line
    coupled = make_task("safe_coupled_halfcheetah_12x1")
    names = [p[0] for p in coupled.parts]
    d = coupled.spec.graph.distances
    assert d[names.index("bthigh0"), names.index("bthigh1")] == 1                # joined through the tendon
    assert d[names.index("bfoot0"), names.index("ffoot1")] == 5


def test_agent_obsk_widens_the_observation():
    dims = [make_task("safe_manyagent_ant_6x1", agent_obsk=k).spec.obs_dims for k in (0, 1, 2)]
    assert all(a < b for a, b in zip(dims[0][1:-1], dims[1][1:-1])) and all(a <= b for a, b in zip(dims[1], dims[2]))
    assert dims[0][0] == 4 * 2 + 7 * 6 + 11 + 2          # own joints' qpos+qvel, 7 bodies' forces, root, corridor
    assert dims[1][2] == dims[0][2] + 4                    # plus the hips of the two neighbouring segments


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_and_batching_do_not_change_results(threads):
    single = make_task("safe_ant_8x1", threads=1, num_envs=5, seed=5)
    multi = make_task("safe_ant_8x1", threads=threads, num_envs=5, seed=5)
    assert multi.sim.threads == threads
    rng = np.random.default_rng(0)
    o1, _ = single.reset(seed=5)
    o2, _ = multi.reset(seed=5)
    for _ in range(30):
        a = rng.uniform(-1, 1, (5, 8, 1))
        r1, r2 = single.step(a), multi.step(a)
        for x, y in zip(r1[:5], r2[:5]):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(r1[5]["state"], r2[5]["state"])


def test_default_threads_follow_the_runs_cpu_budget(monkeypatch):
    """env.threads=0 steps with min(the run's CPUs, copies) threads; an explicit env.threads wins."""
    from safenet import cpus

    monkeypatch.setattr(cpus, "_run_budget", 3)
    assert make_task("safe_ant_8x1", num_envs=5, seed=0).sim.threads == 3
    assert make_task("safe_ant_8x1", num_envs=2, seed=0).sim.threads == 2
    assert make_task("safe_ant_8x1", threads=4, num_envs=5, seed=0).sim.threads == 4
    monkeypatch.setattr(cpus, "_run_budget", 1)
    assert make_task("safe_ant_8x1", num_envs=5, seed=0).sim.threads == 1


# One copy is stepped with plain-float rules (columns.OneColumns), a batch with numpy ones (BatchColumns).
@pytest.mark.parametrize("name", ["safe_ant_8x1", "safety_ant_2x4_velocity", "safe_manyagent_ant_2x3",
                                  "manyagent_ant_3x2", "safe_coupled_halfcheetah_6x2", "safety_halfcheetah_2x3_velocity",
                                  "safety_hopper_3x1_velocity", "safety_walker2d_2x3_velocity",
                                  "safety_swimmer_2x1_velocity"])
def test_a_copy_alone_steps_like_a_copy_in_a_batch(name):
    alone = make_task(name, num_envs=1, seed=0)
    batch = make_task(name, num_envs=3, seed=0)
    obs, _ = alone.reset(seed=3)
    qpos, qvel = alone.sim.datas[0].qpos.copy(), alone.sim.datas[0].qvel.copy()
    batch.reset(seed=4)
    np.testing.assert_array_equal(batch.set_state(np.stack([qpos] * 3), np.stack([qvel] * 3))[0], obs[0])
    s, rng = alone.spec, np.random.default_rng(1)
    for t in range(120):
        a = rng.uniform(-1.2, 1.2, (3, s.n, s.action_dim)) * s.action_mask()
        one, many = alone.step(a[:1]), batch.step(a)
        ended = bool(one[3][0] or one[4][0])     # then both start new episodes from different random states
        for key, x, y in zip(("obs", "reward", "cost", "terminated", "truncated"), one[:5], many[:5]):
            assert x.dtype == y.dtype and x.shape[1:] == y.shape[1:], key
            if not (ended and key == "obs"):
                np.testing.assert_allclose(x[0], y[0], rtol=1e-6, atol=1e-6, err_msg=f"step {t}: {key}")
        for key in ("x_velocity",) + (("final_obs", "final_state") if ended else ("state",)):
            np.testing.assert_allclose(one[5][key][0], many[5][key][0], rtol=1e-6, atol=1e-6,
                                       err_msg=f"step {t}: {key}")
        if ended:
            break


def test_column_helpers_agree_for_one_copy_and_a_batch():
    from safenet_mamujoco.columns import BatchColumns, OneColumns

    rows = np.random.default_rng(0).normal(0, 60, (4, 9))
    rows[1, 3], rows[2, 5] = np.nan, np.inf
    rows[3, 2] = 1e300                                        # finite, but its square overflows
    batch = BatchColumns(rows)
    for b in range(4):
        one = OneColumns(rows[b: b + 1])
        assert one.rows_finite(0, 9) == batch.rows_finite(0, 9)[b]
        assert one.rows_within(1, 9, 100.0) == batch.rows_within(1, 9, 100.0)[b]
        assert one.get(4) == batch.get(4)[b]
        assert one.clip(one.get(0), -5.0, 5.0) == batch.clip(batch.get(0), -5.0, 5.0)[b]
        if b == 0:
            assert one.sumsq(rows[:1]) == pytest.approx(batch.sumsq(rows)[0], rel=1e-12)
    assert batch.rows_finite(0, 9).tolist() == [True, False, False, True]
    x = np.array([-30.0, 0.0, 17.5, 20.0, 40.0, 59.9, 60.0, 80.0, 99.0, 100.0, 150.0])
    np.testing.assert_array_equal(corridor_centre(x), [corridor_centre(float(v)) for v in x])
    t = np.linspace(0.0, 30.0, 11)
    np.testing.assert_array_equal(bomb_control(t), [bomb_control(float(v)) for v in t])


# -- costs ------------------------------------------------------------------------------------------

def _step_from(game: MamujocoGame, qpos, qvel, steps: int = 1):
    game.set_state(qpos, qvel)
    for _ in range(steps):
        out = game.step(zero_actions(game))
    return out


@pytest.mark.parametrize("name,root,wall", [("safe_ant_8x1", "root", 5.0), ("safe_manyagent_ant_2x3", "root", 4.5)])
def test_corridor_cost_near_a_wall_and_none_in_the_middle(name, root, wall):
    game = make_task(name)
    _, _, cost, term, _, _ = _step_from(game, *rest(game, root_x=0.0, root_y=0.0))
    assert cost.shape == (1, game.spec.n, 1) and not cost.any() and not term[0]
    _, _, cost, _, _, _ = _step_from(game, *rest(game, root_x=0.0, root_y=wall - 1.0))
    assert cost.all()                                            # within 1.8 m of the wall at y = c(0) + wall
    x = 40.0                                                     # second leg of the zig-zag: c(40) = 20 tan 30
    c = float(corridor_centre(x))
    _, _, cost, _, _, _ = _step_from(game, *rest(game, root_x=x, root_y=c + 0.5))
    assert not cost.any()
    _, _, cost, _, _, _ = _step_from(game, *rest(game, root_x=x, root_y=c - wall + 1.0))
    assert cost.all()


def test_falling_costs_and_terminates():
    game = make_task("safe_ant_8x1")
    qpos, qvel = rest(game, root_z=1.5)                                          # torso above 1 m
    _, _, cost, term, _, info = _step_from(game, qpos, qvel)
    assert term[0] and cost.all() and "final_obs" in info
    qpos, qvel = rest(game)
    qpos[3:7] = [0.0, 1.0, 0.0, 0.0]                                             # upside down
    _, _, cost, term, _, _ = _step_from(game, qpos, qvel)
    assert term[0] and cost.all()


def test_walls_are_physical_and_can_be_turned_off():
    for walls, beyond in ((True, False), (False, True)):
        game = make_task("safe_ant_8x1", walls=walls)
        qpos, qvel = rest(game, root_y=3.0)
        qvel[1] = 8.0                                                            # thrown sideways at the wall
        game.set_state(qpos, qvel)
        ys = [game.step(zero_actions(game))[5]["state"] is not None and game.src[0, 1] for _ in range(20)]
        assert (max(ys) > 5.0) == beyond, (walls, max(ys))


def test_bomb_cost_within_five_metres():
    game = make_task("safe_coupled_halfcheetah_12x1")
    qpos, qvel = rest(game)
    _, _, cost, _, _, info = _step_from(game, qpos, qvel)
    assert not cost.any()                                                         # bomb starts 34 m behind
    f = game.layout.features
    assert game.src[0, f + 2] == pytest.approx(max(-5.0, BOMB_START / 10.0), abs=0.05)
    qpos, qvel = rest(game, bomb_slide=30.0)                                      # bomb at x = -4
    _, _, cost, _, _, _ = _step_from(game, qpos, qvel)
    assert cost.all()
    assert bomb_control(np.array([0.0]))[0] == pytest.approx(-0.004)


def test_bomb_chases_the_cheetahs():
    game = make_task("safe_coupled_halfcheetah_12x1")
    game.set_state(*rest(game))
    x0 = float(game._bomb_x()[0])
    for _ in range(200):                                                           # 10 s
        game.step(zero_actions(game))
    assert game._bomb_x()[0] > x0 + 5.0


@pytest.mark.parametrize("name,threshold", [("safety_ant_2x4_velocity", 2.522), ("safety_halfcheetah_6x1_velocity", 2.932),
                                            ("safety_swimmer_2x1_velocity", 0.04891)])
def test_velocity_cost_above_the_threshold_only(name, threshold):
    game = make_task(name)
    assert game.velocity_threshold == threshold and game.spec.cost_limits[0] == (25.0,)
    qpos, qvel = rest(game)
    _, _, cost, _, _, info = _step_from(game, qpos, qvel)
    assert abs(info["x_velocity"][0]) < threshold and not cost.any()
    qvel[0] = 3.0 * threshold + 1.0                                                # fast along x
    _, _, cost, _, _, info = _step_from(game, qpos, qvel)
    assert info["x_velocity"][0] > threshold and cost.all()


def test_cost_limits_are_config_values():
    assert make_task("safe_ant_8x1").spec.cost_limits[0] == (0.2,)
    assert make_task("safe_manyagent_ant_2x3").spec.cost_limits[0] == (1.0,)
    assert make_task("safe_coupled_halfcheetah_12x1").spec.cost_limits[0] == (5.0,)
    assert make_task("safe_ant_8x1", cost_limit=3.0).spec.cost_limit_array().tolist() == [[3.0]] * 8
    assert make_task("manyagent_ant_2x3").spec.max_costs == 0


# -- bad input --------------------------------------------------------------------------------------

def test_bad_actions_are_refused_without_touching_the_simulation():
    game = make_task("safe_ant_8x1", num_envs=2)
    game.reset(seed=0)
    before = game.src.copy()
    with pytest.raises(SafenetError, match=r"expected continuous actions of shape \(2, 8, 1\), got \(2, 8\)"):
        game.step(np.zeros((2, 8)))
    bad = np.zeros((2, 8, 1))
    bad[1, 3, 0] = np.nan
    with pytest.raises(SafenetError, match="NaN or inf"):
        game.step(bad)
    np.testing.assert_array_equal(game.src, before)
    assert np.isfinite(game.step(np.zeros((2, 8, 1)))[0]).all()
    with pytest.raises(SafenetError, match="call reset"):
        make_task("safe_ant_8x1").step(np.zeros((1, 8, 1)))
    with pytest.raises(SafenetError, match="set_state got NaN"):
        game.set_state(np.full(game.model.nq, np.nan), np.zeros(game.model.nv))


def test_bad_actions_are_refused_for_a_single_copy_too():
    game = make_task("safety_halfcheetah_6x1_velocity", seed=0)
    game.reset(seed=0)
    before = game.src.copy()
    for bad in (np.nan, np.inf, -np.inf):
        a = np.zeros((1, 6, 1))
        a[0, 4, 0] = bad
        with pytest.raises(SafenetError, match="NaN or inf"):
            game.step(a)
    with pytest.raises(SafenetError, match=r"expected continuous actions of shape \(1, 6, 1\), got \(6, 1\)"):
        game.step(np.zeros((6, 1)))
    np.testing.assert_array_equal(game.src, before)
    # finite actions whose sum of squares overflows are not mistaken for NaN; float32 actions are welcome
    _, reward, *_ = game.step(np.full((1, 6, 1), 1e200))
    assert reward[0, 0] == -np.inf
    game.set_state(before[0, : game.model.nq], before[0, game.model.nq: game.model.nq + game.model.nv])
    r32 = game.step(np.full((1, 6, 1), 0.3, dtype=np.float32))[1]
    game.set_state(before[0, : game.model.nq], before[0, game.model.nq: game.model.nq + game.model.nv])
    r64 = game.step(np.full((1, 6, 1), np.float32(0.3), dtype=np.float64))[1]
    np.testing.assert_array_equal(r32, r64)


# -- PettingZoo face and rendering -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["safe_ant_8x1", "safe_manyagent_ant_3x2", "safe_coupled_halfcheetah_12x1",
                                  "safety_halfcheetah_6x1_velocity", "safety_hopper_3x1_velocity",
                                  "safety_walker2d_2x3_velocity", "safety_swimmer_2x1_velocity",
                                  "safety_ant_4x2_velocity"])
def test_pettingzoo_parallel_api(name):
    from pettingzoo.test import parallel_api_test

    env = parallel_env(name, episode_length=40)
    parallel_api_test(env, num_cycles=60)
    env.reset(seed=0)
    _, _, _, _, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
    assert all(infos[a]["cost"].shape == (1,) for a in env.possible_agents)


def _render_or_skip(game: MamujocoGame) -> np.ndarray:
    try:
        return game.render()
    except SafenetError as exc:
        if "cannot render" in str(exc):
            pytest.skip(f"no offscreen OpenGL on this machine: {exc}")
        raise


def test_render_gives_rgb_frames_that_follow_the_robot():
    game = make_task("safe_ant_8x1", render_width=96, render_height=64)
    game.reset(seed=0)
    first = _render_or_skip(game)
    assert first.shape == (64, 96, 3) and first.dtype == np.uint8 and first.std() > 0
    for _ in range(10):
        game.step(np.ones((1, 8, 1)))
    assert not np.array_equal(game.render(), first)
    with pytest.raises(SafenetError, match="env_index must be in 0..0"):
        game.render(env_index=3)


def test_families_cover_the_spec_thresholds():
    thresholds = {FAMILIES[f].name(f, p): t for f in FAMILIES for p, t in FAMILIES[f].thresholds}
    assert thresholds == {"safety_ant_2x4_velocity": 2.522, "safety_ant_4x2_velocity": 2.418,
                          "safety_halfcheetah_6x1_velocity": 2.932, "safety_halfcheetah_2x3_velocity": 3.227,
                          "safety_hopper_3x1_velocity": 0.9613, "safety_walker2d_2x3_velocity": 1.641,
                          "safety_swimmer_2x1_velocity": 0.04891}


def test_corridor_tasks_suggest_the_paper_budget_and_a_capped_multiplier_in_reward_units():
    """The headline command's defaults: 1e7 env steps, λ in reward per unit cost, at most 1 (the
    healthy reward): the keys an algorithm has are taken (nested ones key by key), the others dropped."""
    from safenet.plugins import get_plugin_manager
    from safenet.trainer import Selection

    pm = get_plugin_manager()                 # the installed algorithm plugins, through their entry points
    safe = Selection.resolve("dec-mappo-l", "safe_ant_8x1", pm).compose()
    assert safe.trainer.total_steps == 10_000_000 and safe.algo.rollout_steps == 500
    assert safe.algo.penalty_units == "reward" and safe.algo.lagrange.max_value == 1.0
    assert safe.algo.lagrange_cap == "reward_rate"
    assert safe.algo.lagrange.method == "gradient"                   # the rest of the section is kept
    plain = Selection.resolve("ippo", "safe_manyagent_ant_2x3", pm).compose()   # no Lagrangian keys: fine
    assert plain.trainer.total_steps == 10_000_000 and "penalty_units" not in plain.algo
    velocity = Selection.resolve("mappo-l", "safety_hopper_3x1_velocity", pm).compose()
    assert velocity.algo.penalty_units == "std" and velocity.trainer.total_steps != 10_000_000


@pytest.mark.parametrize("name,signed", [("safety_swimmer_2x1_velocity", True), ("safety_halfcheetah_6x1_velocity", False)])
def test_velocity_cost_sign_follows_safety_gymnasium(name, signed):
    """safety-gymnasium's multi-agent velocity task: Swimmer's cost is on the signed x velocity
    (fast backwards costs nothing); robots without a y coordinate use |vx|."""
    game = make_task(name)
    threshold = game.velocity_threshold
    qpos, qvel = rest(game)
    qvel[0] = -(3.0 * threshold + 1.0)                                             # fast backwards along x
    _, _, cost, _, _, info = _step_from(game, qpos, qvel)
    assert info["x_velocity"][0] < -threshold
    assert (not cost.any()) if signed else cost.all()
