"""Stacked flat-parameter networks (safenet.stacked) against plain per-member torch code."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from safenet.graph import Graph
from safenet.stacked import (NeighbourhoodMLP, NumpyPolicy, StackedAdam, StackedMLP, StackedPolicy, adam_rows_,
                             categorical_entropy, categorical_log_prob, gaussian_entropy, gaussian_log_prob)


@pytest.mark.parametrize("activation", ["relu", "tanh", "silu"])
def test_stacked_mlp_is_one_mlp_per_member(activation):
    torch.manual_seed(0)
    net = StackedMLP(4, 3, [8, 5], 2, activation=activation)
    with torch.no_grad():
        net.flat.add_(0.1 * torch.randn_like(net.flat))          # non-zero biases too
    x = torch.randn(4, 7, 3)
    y = net(x)
    assert y.shape == (4, 7, 2)
    for g in range(4):
        torch.testing.assert_close(y[g], net.member(g)(x[g]))
    rows = torch.tensor([3, 1])                                  # a subset of members through their rows
    torch.testing.assert_close(net(x[rows], net.flat[rows]), y[rows])
    with pytest.raises(ValueError, match=r"expected input \[4, N, 3\]"):
        net(torch.randn(3, 7, 3))
    y.square().sum().backward()                                  # in-place activations keep their backward
    member = net.member(2)
    lin = [m for m in member if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad(member(x[2]).square().sum(), [lin[0].weight, lin[-1].bias])
    torch.testing.assert_close(net.weight(0, net.flat.grad)[2], grads[0].T)
    torch.testing.assert_close(net.bias(len(lin) - 1, net.flat.grad)[2], grads[1])


def test_numpy_acting_copy_with_silu_computes_the_network():
    torch.manual_seed(2)
    pol = StackedPolicy(3, 4, "discrete", (2, 2, 2), hidden=(8,), activation="silu")
    with torch.no_grad():
        pol.flat.add_(0.5 * torch.randn_like(pol.flat))
    x = torch.randn(3, 5, 4)
    np.testing.assert_allclose(NumpyPolicy(pol).mean(x.numpy()), pol.net(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_initialisation_is_orthogonal_per_member_with_zero_biases():
    net = StackedMLP(3, 6, [6], 4, out_gain=0.01)
    w0 = net.weight(0)
    for g in range(3):
        torch.testing.assert_close(w0[g].T @ w0[g], 2.0 * torch.eye(6), atol=1e-5, rtol=0)   # gain √2
    assert float(net.weight(1).detach().abs().max()) < 0.02
    assert not net.bias(0).any() and not net.bias(1).any()
    assert not torch.equal(w0[0], w0[1])


@pytest.mark.parametrize("kappa", [0, 1, 2, 4])
def test_dense_and_gathered_neighbourhood_inputs_are_the_same_function(kappa):
    idx, mask = Graph.line(5).neighbourhood_index(kappa)
    torch.manual_seed(1)
    dense = NeighbourhoodMLP(idx, mask, 3, [8], 2, dense=True)
    gathered = NeighbourhoodMLP(idx, mask, 3, [8], 2, dense=False)
    gathered.load_state_dict(dense.state_dict())
    x = torch.randn(6, 5, 3)
    yd, yg = dense.forward_obs(x), gathered.forward_obs(x)
    torch.testing.assert_close(yd, yg)
    yd.square().sum().backward()
    yg.square().sum().backward()
    torch.testing.assert_close(dense.flat.grad, gathered.flat.grad)
    # the gathered input is the agent's neighbourhood, slot after slot, padded slots zero
    inp = gathered.share_input(x)
    for i in range(5):
        parts = [x[:, j] if real else torch.zeros(6, 3) for j, real in zip(idx[i], mask[i])]
        torch.testing.assert_close(inp[i], torch.cat(parts, -1))
    # agent 0 reads only N_0^κ: changing the others leaves its output alone
    far = x.clone()
    far[:, kappa + 1:] += 1.0
    torch.testing.assert_close(dense.forward_obs(far)[0], yd[0])


def test_a_shared_source_every_agent_reads():
    n, s = 4, 5
    net = NeighbourhoodMLP(np.zeros((n, 1), dtype=np.int64), np.ones((n, 1), bool), s, [6], 1, n_sources=1)
    assert net.dense
    x = torch.randn(9, 1, s)
    y = net.forward_obs(x)
    for g in range(n):
        torch.testing.assert_close(y[g], net.member(g)(x[:, 0]))


def test_adam_rows_is_adam_after_a_per_member_clip():
    torch.manual_seed(2)
    G, P = 3, 7
    p = torch.randn(G, P)
    m, v, steps = torch.zeros(G, P), torch.zeros(G, P), torch.tensor([0.0, 4.0, 0.0])
    refs = [nn.Parameter(p[g].clone()) for g in range(G)]
    opts = [torch.optim.Adam([r], lr=0.01, eps=1e-5) for r in refs]
    for r, o in zip(refs, opts):                                  # row 1 has taken 4 steps before (zero grads)
        if r is refs[1]:
            for _ in range(4):
                r.grad = torch.zeros(P)
                o.step()
    for _ in range(3):
        grad = 3.0 * torch.randn(G, P)
        norms = adam_rows_(p, grad, m, v, steps, lr=0.01, eps=1e-5, max_grad_norm=1.0)
        torch.testing.assert_close(norms, grad.norm(dim=1))
        for g in range(G):
            refs[g].grad = grad[g].clone()
            nn.utils.clip_grad_norm_([refs[g]], 1.0)
            opts[g].step()
    torch.testing.assert_close(p, torch.stack([r.detach() for r in refs]))
    torch.testing.assert_close(steps, torch.tensor([3.0, 7.0, 3.0]))


def test_stacked_adam_on_a_subset_leaves_the_other_rows_alone():
    flat = nn.Parameter(torch.randn(4, 5))
    opt = StackedAdam(flat, 0.1)
    flat.grad = torch.ones(4, 5)
    opt.step()
    before = flat.detach().clone(), opt.exp_avg.clone(), opt.steps.clone()
    rows = torch.tensor([2, 0])
    p, m, v, steps = opt.rows(rows)
    assert p.requires_grad and p.is_leaf
    for _ in range(3):
        adam_rows_(p.data, torch.ones(2, 5), m, v, steps, **opt.hyper())
    opt.put_rows(rows, p, m, v, steps)
    for r in (1, 3):
        assert torch.equal(flat[r], before[0][r]) and torch.equal(opt.exp_avg[r], before[1][r])
    assert opt.steps.tolist() == [4.0, 1.0, 4.0, 1.0]
    assert not torch.equal(flat[0], before[0][0])
    state = opt.state_dict()
    other = StackedAdam(nn.Parameter(torch.zeros(4, 5)), 0.5)
    other.load_state_dict(state)
    # the moments come back; the learning rate is the new optimiser's own (a resumed run's config sets it)
    assert torch.equal(other.exp_avg_sq, opt.exp_avg_sq) and other.lr == 0.5


def test_closed_form_log_probs_and_entropies_match_torch_distributions():
    torch.manual_seed(3)
    mean, log_std = torch.randn(2, 6, 3), torch.randn(2, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    a = torch.randn(2, 6, 3) * mask[:, None, :]
    d = torch.distributions.Normal(mean, log_std.exp()[:, None, :].expand_as(mean))
    torch.testing.assert_close(gaussian_log_prob(mean, log_std, a, mask), (d.log_prob(a) * mask[:, None]).sum(-1))
    torch.testing.assert_close(gaussian_entropy(log_std, mask), (d.entropy()[:, 0] * mask).sum(-1))
    logits = torch.randn(2, 6, 4)
    amask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    acts = torch.randint(0, 3, (2, 6))
    c = torch.distributions.Categorical(logits=logits.masked_fill(~amask[:, None, :], -1e9))
    torch.testing.assert_close(categorical_log_prob(logits, acts, amask), c.log_prob(acts))
    torch.testing.assert_close(categorical_entropy(logits, amask), c.entropy())


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_the_numpy_acting_copy_computes_the_policy(kind):
    torch.manual_seed(4)
    pol = StackedPolicy(3, 4, kind, (2, 1, 3), hidden=(8,), init_log_std=-0.3)
    with torch.no_grad():
        pol.flat.add_(0.5 * torch.randn_like(pol.flat))
    fast = NumpyPolicy(pol)
    x = torch.randn(3, 2000, 4)
    rng = np.random.default_rng(0)
    a, logp = fast.act(x.numpy(), rng)
    ref_logp, _ = pol.log_prob_entropy(x, torch.as_tensor(a))
    np.testing.assert_allclose(logp, ref_logp.detach().numpy(), rtol=1e-4, atol=1e-4)
    det, _ = fast.act(x.numpy(), rng, deterministic=True)
    out = pol.net(x).detach()
    if kind == "continuous":
        assert np.all(a[1, :, 1:] == 0) and np.all(a[0, :, 2] == 0)            # padded dimensions
        np.testing.assert_allclose(det, (out * pol.action_mask[:, None, :]).numpy(), rtol=1e-5, atol=1e-6)
        std = math.exp(float(pol.net.extras()[0, 0].detach()))
        assert abs(float(np.std(a[0, :, 0] - det[0, :, 0])) - std) < 0.1 * std
    else:
        assert a.max(1).tolist() <= [1, 0, 2] and np.all(a >= 0)              # only real actions
        probs = torch.softmax(out.masked_fill(~pol.action_mask[:, None, :], -1e9), -1)
        np.testing.assert_array_equal(det, probs.argmax(-1).numpy())
        # sampled frequencies of agent 2 over one fixed input follow its probabilities
        xs = np.repeat(x[:, :1].numpy(), 4000, axis=1)
        samples, _ = fast.act(xs, np.random.default_rng(1))
        freq = np.bincount(samples[2], minlength=3) / 4000
        np.testing.assert_allclose(freq, probs[2, 0].numpy(), atol=0.03)


def test_orthogonal_stack_gives_orthogonal_members():
    from safenet.stacked import orthogonal_stack

    for rows, cols in ((64, 64), (10, 64), (64, 9)):
        w = orthogonal_stack(700, rows, cols, gain=2.0, chunk=256).double() / 2.0
        small = min(rows, cols)
        gram = w @ w.transpose(1, 2) if rows < cols else w.transpose(1, 2) @ w
        torch.testing.assert_close(gram, torch.eye(small, dtype=torch.float64).expand(700, -1, -1), atol=1e-5, rtol=0)
        assert not torch.allclose(w[0], w[1])                      # independent members
