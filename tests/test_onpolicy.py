"""The shared on-policy pieces (safenet.onpolicy) against hand values and dense references."""
from __future__ import annotations

import numpy as np
import torch

from safenet.graph import Graph
from safenet.onpolicy import AgentGather, EpisodeCostTracker, neighbourhood_floats, neighbourhood_mean, normalize_per_agent
from safenet.ppo import gather_neighbourhood
from safenet.schedule import plan_updates


def test_agent_gather_reads_the_neighbourhood_and_sums_the_predecessors_sparsely():
    g = Graph.line(6)
    idx, mask = g.neighbourhood_index(1)
    gather = AgentGather(idx, mask)
    x = torch.randn(7, 6, 3)                                          # [samples, n, d]
    expected = gather_neighbourhood(x, idx, mask).transpose(0, 1)     # [n, samples, K*d]
    torch.testing.assert_close(gather(x.transpose(0, 1)), expected)
    agents = torch.tensor([4, 1])
    torch.testing.assert_close(gather(x.transpose(0, 1), agents), expected[agents])
    # the correction factor's sum over already-updated agents inside N_i, against the dense n x n form
    plan = plan_updates(g, 1, np.random.default_rng(0))
    select = gather.slots_of(plan.predecessors)
    log_ratio = torch.randn(6, 7)
    dense = torch.as_tensor(plan.predecessor_mask(), dtype=torch.float32) @ log_ratio
    torch.testing.assert_close(gather.select_sum(log_ratio, select, torch.arange(6)), dense)
    assert AgentGather(np.arange(6)[:, None], np.ones((6, 1), bool)).identity


def test_neighbourhood_mean_and_floats_on_a_line():
    g = Graph.line(4)
    idx, mask = g.neighbourhood_index(1)
    r = np.array([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(neighbourhood_mean(r, idx, mask), [[1.5, 2.0, 3.0, 3.5]])
    idx0, mask0 = g.neighbourhood_index(0)
    np.testing.assert_allclose(neighbourhood_mean(r, idx0, mask0), r)
    assert neighbourhood_floats(mask, 2) == (1 + 2 + 2 + 1) * 2
    assert neighbourhood_floats(mask0, 5) == 0


def test_normalize_per_agent_standardises_each_agent_column():
    x = np.stack([np.arange(5.0), 10 * np.arange(5.0)], axis=1)     # [S=5, n=2]
    out = normalize_per_agent(x)
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.std(0), 1.0, atol=1e-6)
    np.testing.assert_allclose(out[:, 0], out[:, 1])


def test_episode_cost_tracker_sums_episodes_across_rollouts():
    tr = EpisodeCostTracker(2, (1, 1))
    cost = np.ones((3, 2, 1, 1))
    done = np.array([[False, False], [False, True], [False, False]])
    ended = tr.add(cost, done)
    np.testing.assert_allclose(ended[:, 0, 0], [2.0])                 # copy 1 ended after 2 steps
    done2 = np.array([[True, False], [False, False], [False, True]])
    ended = tr.add(2 * cost, done2)
    np.testing.assert_allclose(ended[:, 0, 0], [3 + 2, 1 + 2 * 3])     # copy 0: 3 + 2; copy 1: 1 + 6
    other = EpisodeCostTracker(2, (1, 1))
    other.load_state_dict(tr.state_dict())
    np.testing.assert_allclose(other.running, tr.running)
