"""Our scenarios against gymnasium-robotics' MaMuJoCo (a test-only dependency).

Both are driven from the same initial state with the same random actions; rewards, every agent's
observation and the global state must agree over a few hundred steps.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from safenet_mamujoco.game import MamujocoGame, make_task

mamujoco = pytest.importorskip("gymnasium_robotics.envs.multiagent_mujoco.mamujoco_v1")

STEPS = 300


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """MuJoCo writes MUJOCO_LOG.TXT into the working directory on Gymnasium's deprecation warnings."""
    monkeypatch.chdir(tmp_path)


def _reference(scenario: str, conf: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mamujoco.parallel_env(scenario, conf, agent_obsk=1)


def _drive(ref, game: MamujocoGame, seed: int) -> int:
    """Run both side by side; returns the number of steps compared."""
    ref_obs, _ = ref.reset(seed=seed)
    data = ref.single_agent_env.unwrapped.data
    obs = game.set_state(data.qpos.copy(), data.qvel.copy())
    agents = ref.possible_agents
    spec = game.spec
    assert [ref.action_space(a).shape[0] for a in agents] == list(spec.action_dims)
    assert [ref.observation_space(a).shape[0] for a in agents] == list(spec.obs_dims)
    for i, a in enumerate(agents):
        np.testing.assert_allclose(obs[0, i, : spec.obs_dims[i]], ref_obs[a], rtol=1e-5, atol=1e-6)
    rng = np.random.default_rng(seed)
    for t in range(STEPS):
        actions = rng.uniform(-1, 1, (1, spec.n, spec.action_dim)) * spec.action_mask()
        ref_obs, ref_rew, ref_term, ref_trunc, _ = ref.step(
            {a: actions[0, i, : spec.action_dims[i]] for i, a in enumerate(agents)})
        obs, rew, cost, term, trunc, info = game.step(actions)
        assert bool(term[0]) == bool(ref_term[agents[0]]), f"step {t}: termination differs"
        if term[0]:
            obs = info["final_obs"]
        np.testing.assert_allclose(rew[0], [ref_rew[a] for a in agents], rtol=1e-5, atol=1e-5,
                                   err_msg=f"step {t}: rewards differ")
        for i, a in enumerate(agents):
            np.testing.assert_allclose(obs[0, i, : spec.obs_dims[i]], ref_obs[a], rtol=1e-5, atol=1e-5,
                                       err_msg=f"step {t}: observation of {a} differs")
        state = info["final_state"] if term[0] else info["state"]
        np.testing.assert_allclose(state[0], ref.state(), rtol=1e-5, atol=1e-5, err_msg=f"step {t}: state differs")
        if term[0]:
            return t + 1
    return STEPS


@pytest.mark.parametrize("task,scenario,conf", [("safety_ant_2x4_velocity", "Ant", "2x4"),
                                                ("safety_ant_4x2_velocity", "Ant", "4x2"),
                                                ("safety_halfcheetah_6x1_velocity", "HalfCheetah", "6x1"),
                                                ("safety_halfcheetah_2x3_velocity", "HalfCheetah", "2x3")])
def test_same_rewards_and_observations_as_mamujoco(task, scenario, conf):
    ref = _reference(scenario, conf)
    game = make_task(task, seed=0)
    compared = sum(_drive(ref, game, seed) for seed in (1, 2))
    assert compared >= 100


@pytest.mark.parametrize("conf", ["2x3", "3x2", "6x1"])
def test_many_segment_ant_same_physics_rewards_state_and_motors(conf):
    """ManySegmentAnt: the same motor commands give the same rewards and global state (Ant-v5's
    observation) for a few hundred steps, and every agent drives the same set of motors. Agent
    observations are compared in the next test: MaMuJoCo's own are mis-indexed."""
    ref = _reference("ManySegmentAnt", conf)
    game = make_task(f"manyagent_ant_{conf}", seed=0)
    m = game.model
    act = {mujoco_name(m, int(m.actuator_trnid[a, 0])): a for a in range(m.nu)}
    ours = [sorted(act[j] for j in part) for part in game.parts]
    theirs = [sorted(int(node.act_ids) for node in part) for part in ref.agent_action_partitions]
    assert ours == theirs
    compared = 0
    for seed in (3, 4):
        ref.reset(seed=seed)
        data = ref.single_agent_env.unwrapped.data
        game.set_state(data.qpos.copy(), data.qvel.copy())
        rng = np.random.default_rng(seed)
        for t in range(STEPS):
            ctrl = rng.uniform(-1, 1, m.nu)
            ours_a = np.zeros((1, game.spec.n, game.spec.action_dim))
            for i, part in enumerate(game.parts):
                ours_a[0, i, : len(part)] = ctrl[[act[j] for j in part]]
            _, ref_rew, ref_term, _, _ = ref.step(ref.map_global_action_to_local_actions(ctrl))
            _, rew, _, term, _, info = game.step(ours_a)
            compared += 1
            assert bool(term[0]) == bool(ref_term[ref.possible_agents[0]]), f"step {t}: termination differs"
            np.testing.assert_allclose(rew[0, 0], ref_rew[ref.possible_agents[0]], rtol=1e-5, atol=1e-5)
            state = info["final_state"] if term[0] else info["state"]
            np.testing.assert_allclose(state[0], ref.state(), rtol=1e-5, atol=1e-5, err_msg=f"step {t}")
            if term[0]:
                break
    assert compared >= 100


def mujoco_name(model, joint_id: int) -> str:
    import mujoco

    return mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, joint_id)


def test_many_segment_ant_reference_indexing_is_off():
    """Why agent observations are not compared with MaMuJoCo's ManySegmentAnt (gymnasium-robotics 1.4):
    its joint nodes index qpos with a wrongly signed offset (segment 0's 'hip1_0' reads the qpos of
    'ankle1_2' in a 6-segment ant) and its 'hip1_s' nodes drive the 'hip2_s' motors."""
    import mujoco

    ref = _reference("ManySegmentAnt", "2x3")
    m = ref.single_agent_env.unwrapped.model
    node = ref.agent_action_partitions[0][0]
    assert node.label == "hip1_0"
    read = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(m.njnt)
            if m.jnt_qposadr[j] == node.qpos_ids % m.nq]
    assert read == ["ankle1_2"]
    driven = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, int(m.actuator_trnid[node.act_ids, 0]))
    assert driven == "hip2_0"


def test_many_segment_ant_default_graph_is_the_segment_chain():
    """Our own hop sets: each agent sees the adjacent segments' hips on both sides, once."""
    ref = _reference("ManySegmentAnt", "3x2")
    game = make_task("manyagent_ant_3x2")
    assert game.rings[1] == [sorted(["ankle1_2", "ankle1_3", "ankle2_2", "ankle2_3", "hip1_2", "hip1_3",
                                     "hip2_2", "hip2_3"]), ["hip1_1", "hip1_4", "hip2_1", "hip2_4"]]
    theirs = [n.label for n in ref.k_dicts[1][1]]
    assert sorted(theirs) == ["hip1_1", "hip1_2", "hip2_1", "hip2_2"]       # own hips again, no next segment
    assert game.spec.graph.diameter == 2                                        # a line of 3 agents
