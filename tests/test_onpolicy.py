"""The shared on-policy pieces (safenet.onpolicy) against hand values and torch's own Adam."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from safenet.graph import Graph
from safenet.nets import AgentMLP
from safenet.onpolicy import (AgentAdam, EpisodeCostTracker, log_correction, neighbourhood_floats, neighbourhood_mean,
                              normalize_per_agent, subset_distribution, subset_entropy, subset_forward, subset_log_prob)
from safenet.ppo import AgentPolicy


def _quadratic_grads(params: list[torch.Tensor], target: float = 1.0) -> None:
    loss = sum(((p - target) ** 2 * (1.0 + torch.arange(p.numel()).reshape(p.shape))).sum() for p in params)
    loss.backward()


def test_agent_adam_equals_torch_adam_per_agent_and_leaves_inactive_agents_alone():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3, 4, 2))
    b = torch.nn.Parameter(torch.randn(3, 2))
    opt = AgentAdam([w, b], 3, lr=0.1, eps=1e-5)
    # reference: agent 1 alone with torch.optim.Adam, stepping only when agent 1 is active
    w1 = torch.nn.Parameter(w.detach()[1].clone())
    b1 = torch.nn.Parameter(b.detach()[1].clone())
    ref = torch.optim.Adam([w1, b1], lr=0.1, eps=1e-5)
    schedule = [[True, True, False], [False, True, True], [True, False, True], [True, True, True]]
    frozen = None
    for active in schedule:
        opt.zero_grad()
        _quadratic_grads([w, b])
        if active == [True, False, True]:
            frozen = (w.detach()[1].clone(), opt.exp_avg[0][1].clone())
        opt.step(torch.tensor(active))
        if active[1]:
            ref.zero_grad()
            # same per-element gradient as agent 1's slice of the stacked loss
            ((w1 - 1.0) ** 2 * (1.0 + torch.arange(24).reshape(3, 4, 2)[1])).sum().backward()
            ((b1 - 1.0) ** 2 * (1.0 + torch.arange(6).reshape(3, 2)[1])).sum().backward()
            ref.step()
        torch.testing.assert_close(w.detach()[1], w1.detach())
        torch.testing.assert_close(b.detach()[1], b1.detach())
        if active == [True, False, True]:        # agent 1 inactive: parameters and moments untouched
            assert torch.equal(w.detach()[1], frozen[0]) and torch.equal(opt.exp_avg[0][1], frozen[1])
    assert opt.steps.tolist() == [3.0, 3.0, 3.0]


def test_agent_adam_clips_each_agents_gradient_separately():
    w = torch.nn.Parameter(torch.zeros(2, 3))
    opt = AgentAdam([w], 2, lr=1.0, max_grad_norm=1.0)
    w.grad = torch.tensor([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]])   # norms 5 and 0.5
    norms = opt.step()
    torch.testing.assert_close(norms, torch.tensor([5.0, 0.5], dtype=torch.float64))
    # the first agent's gradient becomes (0.6, 0.8, 0); Adam's first step moves by lr · g/|g| per element
    torch.testing.assert_close(opt.exp_avg[0], torch.tensor([[0.06, 0.08, 0.0], [0.03, 0.04, 0.0]]))


def test_agent_adam_state_round_trip_and_shape_check():
    w = torch.nn.Parameter(torch.ones(2, 2))
    opt = AgentAdam([w], 2, lr=0.1)
    w.grad = torch.ones(2, 2)
    opt.step(torch.tensor([True, False]))
    other = AgentAdam([torch.nn.Parameter(torch.ones(2, 2))], 2, lr=0.5)
    other.load_state_dict(opt.state_dict())
    assert other.lr == 0.1 and other.steps.tolist() == [1.0, 0.0]
    torch.testing.assert_close(other.exp_avg[0], opt.exp_avg[0])
    with pytest.raises(ValueError, match="stacked per agent"):
        AgentAdam([torch.nn.Parameter(torch.ones(3, 2))], 2, lr=0.1)


def test_subset_forward_and_distribution_match_the_full_network_rows():
    torch.manual_seed(0)
    mlp = AgentMLP(4, 3, (8,), 2)
    x = torch.randn(5, 4, 3)
    agents = torch.tensor([3, 1])
    torch.testing.assert_close(subset_forward(mlp, x[:, agents], agents), mlp(x)[:, agents])
    for kind, dims in (("discrete", (2, 3, 3, 2)), ("continuous", (2, 1, 2, 1))):
        pol = AgentPolicy(4, 3, kind, dims)
        full = pol.distribution(x)
        sub = subset_distribution(pol, x[:, agents], agents)
        a = pol.sample(full)
        torch.testing.assert_close(subset_log_prob(pol, sub, a[:, agents], agents), pol.log_prob(full, a)[:, agents])
        torch.testing.assert_close(subset_entropy(pol, sub, agents), pol.entropy(full)[:, agents])


def test_log_correction_sums_only_the_predecessors_log_ratios():
    log_ratio = torch.tensor([[0.1, 0.2, 0.3, 0.0]])
    preds = np.zeros((4, 4), dtype=bool)
    preds[2, [0, 1]] = True                          # agent 2 after 0 and 1
    preds[3, [2]] = True                             # agent 3 after 2 only (0, 1 outside its neighbourhood)
    out = log_correction(log_ratio, preds)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 0.1 + 0.2, 0.3]]))
    assert math.isclose(float(torch.exp(out[0, 2])), math.exp(0.1) * math.exp(0.2), rel_tol=1e-6)


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
