"""The shared PPO-family pieces against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from safenet.graph import Graph
from safenet.ppo import AgentPolicy, RunningMeanStd, clipped_surrogate, gather_neighbourhood, minibatches, value_loss


def test_clipped_surrogate_matches_hand_values():
    logp_old = torch.log(torch.tensor([0.5, 0.5, 0.5, 0.5]))
    logp_new = torch.log(torch.tensor([0.8, 0.8, 0.3, 0.3]))      # ratios 1.6, 1.6, 0.6, 0.6
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    out = clipped_surrogate(logp_new, logp_old, adv, clip=0.2)
    # A>0: min(1.6, 1.2) = 1.2; A<0: min(-1.6, -1.2) = -1.6; A>0: min(0.6, 0.8) = 0.6; A<0: min(-0.6, -0.8) = -0.8
    torch.testing.assert_close(out, torch.tensor([1.2, -1.6, 0.6, -0.8]))


def test_correction_factor_scales_the_advantage_and_is_not_differentiated():
    logp_old = torch.zeros(2)
    logp_new = torch.tensor([0.1, -0.1], requires_grad=True)
    m = torch.tensor([2.0, 0.5], requires_grad=True)
    out = clipped_surrogate(logp_new, logp_old, torch.tensor([1.0, 1.0]), clip=0.2, correction=m)
    torch.testing.assert_close(out, torch.tensor([2.0 * math.exp(0.1), 0.5 * math.exp(-0.1)]))
    out.sum().backward()
    assert m.grad is None and logp_new.grad is not None


def test_value_loss_plain_huber_and_clipped():
    pred, target = torch.tensor([1.0, 4.0]), torch.tensor([0.0, 0.0])
    torch.testing.assert_close(value_loss(pred, target), torch.tensor([0.5, 8.0]))
    torch.testing.assert_close(value_loss(pred, target, huber_delta=1.0), torch.tensor([0.5, 3.5]))
    old = torch.tensor([0.0, 0.0])
    # clipped prediction old ± 0.5 → errors 0.125, 0.125; max with the unclipped ones
    torch.testing.assert_close(value_loss(pred, target, old=old, clip=0.5), torch.tensor([0.5, 8.0]))
    old = torch.tensor([3.0, 3.0])                                     # clipped preds 2.5, 3.5
    torch.testing.assert_close(value_loss(pred, target, old=old, clip=0.5), torch.tensor([3.125, 8.0]))


def test_running_mean_std_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 3))
    rms = RunningMeanStd((3,), eps=0.0)
    for part in np.array_split(data, 7):
        rms.update(part)
    np.testing.assert_allclose(rms.mean, data.mean(0))
    np.testing.assert_allclose(rms.var, data.var(0))
    other = RunningMeanStd((3,))
    other.load_state_dict(rms.state_dict())
    np.testing.assert_allclose(other.normalize(data), rms.normalize(data))


def test_minibatches_partition_the_samples():
    parts = list(minibatches(10, 3, np.random.default_rng(0)))
    assert len(parts) == 3 and sorted(np.concatenate(parts).tolist()) == list(range(10))
    with pytest.raises(ValueError):
        list(minibatches(10, 0, np.random.default_rng(0)))


def test_gather_neighbourhood_reads_only_the_kappa_hop_agents():
    g = Graph.line(4)
    idx, mask = g.neighbourhood_index(1)                               # K = 3
    x = torch.arange(8, dtype=torch.float32).reshape(1, 4, 2)          # agent i's features (2i, 2i+1)
    out = gather_neighbourhood(x, idx, mask)
    assert out.shape == (1, 4, 6)
    torch.testing.assert_close(out[0, 0], torch.tensor([0.0, 1.0, 2.0, 3.0, 0.0, 0.0]))   # self, 1, pad
    torch.testing.assert_close(out[0, 1], torch.tensor([2.0, 3.0, 0.0, 1.0, 4.0, 5.0]))   # self, 0, 2
    x2 = x.clone()
    x2[0, 3] += 100.0                                                   # agent 3 is outside N_0^1
    torch.testing.assert_close(gather_neighbourhood(x2, idx, mask)[0, 0], out[0, 0])


def test_categorical_policy_masks_padded_actions():
    torch.manual_seed(0)
    pol = AgentPolicy(3, 4, "discrete", action_dims=(2, 3, 5))
    dist = pol.distribution(torch.randn(7, 3, 4))
    probs = dist.probs
    assert probs.shape == (7, 3, 5)
    assert torch.all(probs[:, 0, 2:] < 1e-6) and torch.all(probs[:, 1, 3:] < 1e-6)
    a = pol.sample(dist)
    assert (a < torch.tensor([2, 3, 5])).all()
    assert pol.log_prob(dist, a).shape == (7, 3)


def test_gaussian_policy_ignores_padded_dimensions():
    torch.manual_seed(0)
    pol = AgentPolicy(2, 3, "continuous", action_dims=(1, 2), init_log_std=0.0)
    x = torch.randn(5, 2, 3)
    dist = pol.distribution(x)
    a = pol.sample(dist)
    assert torch.all(a[:, 0, 1] == 0)
    lp = pol.log_prob(dist, a)
    expected0 = torch.distributions.Normal(dist.mean[:, 0, 0], 1.0).log_prob(a[:, 0, 0])
    torch.testing.assert_close(lp[:, 0], expected0)
    torch.testing.assert_close(pol.entropy(dist)[:, 0], torch.full((5,), 0.5 * math.log(2 * math.pi * math.e)))
