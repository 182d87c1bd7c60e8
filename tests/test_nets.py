"""Per-agent networks run as one batched op must equal a loop of separate per-agent layers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from safenet.nets import AgentLinear, AgentMLP, masked_categorical


def _loop_linear(layer: AgentLinear, x: torch.Tensor) -> torch.Tensor:
    """Reference: one nn.Linear per agent, built from the same weights, applied in a Python loop."""
    n = x.shape[-2]
    outs = []
    for i in range(n):
        k = 0 if layer.weight.shape[0] == 1 else i
        lin = nn.Linear(layer.in_features, layer.out_features)
        with torch.no_grad():
            lin.weight.copy_(layer.weight[k].T)
            lin.bias.copy_(layer.bias[k])
        outs.append(lin(x[..., i, :]))
    return torch.stack(outs, dim=-2)


@pytest.mark.parametrize("batch", [(), (5,), (3, 2)])
def test_agent_linear_equals_loop_of_linears(batch):
    torch.manual_seed(0)
    layer = AgentLinear(4, 3, 5)
    assert layer.weight.shape == (4, 3, 5) and layer.bias.shape == (4, 5)
    x = torch.randn(*batch, 4, 3)
    y = layer(x)
    assert y.shape == (*batch, 4, 5)
    torch.testing.assert_close(y, _loop_linear(layer, x))


def test_agents_have_different_weights():
    torch.manual_seed(0)
    layer = AgentLinear(3, 2, 2)
    x = torch.ones(3, 2)
    y = layer(x)
    assert not torch.allclose(y[0], y[1])


def test_gradients_reach_only_the_agents_own_weights():
    torch.manual_seed(0)
    layer = AgentLinear(3, 4, 2)
    x = torch.randn(7, 3, 4)
    layer(x)[:, 1].pow(2).sum().backward()
    wg, bg = layer.weight.grad, layer.bias.grad
    assert wg[1].abs().sum() > 0 and bg[1].abs().sum() > 0
    assert torch.all(wg[0] == 0) and torch.all(wg[2] == 0)
    assert torch.all(bg[0] == 0) and torch.all(bg[2] == 0)
    # and agent 1's gradient equals that of its separate layer
    lin = nn.Linear(4, 2)
    with torch.no_grad():
        lin.weight.copy_(layer.weight[1].T)
        lin.bias.copy_(layer.bias[1])
    lin(x[:, 1]).pow(2).sum().backward()
    torch.testing.assert_close(wg[1], lin.weight.grad.T)
    torch.testing.assert_close(bg[1], lin.bias.grad)


def test_input_of_one_agent_affects_only_its_output():
    torch.manual_seed(0)
    mlp = AgentMLP(3, 4, [8], 2)
    x = torch.randn(5, 3, 4, requires_grad=True)
    mlp(x)[:, 0].sum().backward()
    assert x.grad[:, 0].abs().sum() > 0
    assert torch.all(x.grad[:, 1:] == 0)


def test_shared_weights_broadcast_to_any_number_of_agents():
    torch.manual_seed(0)
    layer = AgentLinear(3, 4, 2, shared=True)
    assert layer.weight.shape == (1, 4, 2)
    for n in (3, 1, 6):
        x = torch.randn(2, n, 4)
        y = layer(x)
        assert y.shape == (2, n, 2)
        torch.testing.assert_close(y, x @ layer.weight[0] + layer.bias[0])
    # agents with equal inputs get equal outputs; gradient of all agents lands on the one weight
    x = torch.randn(1, 4).expand(3, 4)
    y = layer(x)
    torch.testing.assert_close(y[0], y[2])
    layer(torch.randn(5, 3, 4))[:, 2].sum().backward()
    assert layer.weight.grad.abs().sum() > 0


def test_wrong_number_of_agents_is_an_error():
    layer = AgentLinear(3, 4, 2)
    with pytest.raises(ValueError, match=r"\[\.\.\., 3, 4\]"):
        layer(torch.randn(2, 4, 4))


def test_single_agent_layer_rejects_more_agents():
    layer = AgentLinear(1, 4, 2)
    with pytest.raises(ValueError):
        layer(torch.randn(2, 5, 4))


def test_agent_mlp_equals_loop_of_per_agent_mlps():
    torch.manual_seed(0)
    n, i, h, o = 3, 5, [7, 6], 2
    mlp = AgentMLP(n, i, h, o, activation=nn.ReLU)
    linears = [m for m in mlp.net if isinstance(m, AgentLinear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 7), (7, 6), (6, 2)]
    assert isinstance(mlp.net[-1], AgentLinear), "no activation after the output layer"
    x = torch.randn(4, n, i)
    outs = []
    for a in range(n):
        z = x[:, a]
        for k, m in enumerate(linears):
            z = z @ m.weight[a] + m.bias[a]
            if k < len(linears) - 1:
                z = torch.relu(z)
        outs.append(z)
    torch.testing.assert_close(mlp(x), torch.stack(outs, dim=1))


def test_agent_mlp_orthogonal_init():
    torch.manual_seed(0)
    mlp = AgentMLP(2, 8, [8], 3, out_gain=0.01)
    hidden, out = [m for m in mlp.net if isinstance(m, AgentLinear)]
    for a in range(2):
        w = hidden.weight[a]
        torch.testing.assert_close(w.T @ w, 2.0 * torch.eye(8), atol=1e-5, rtol=1e-5)   # gain sqrt(2)
        w = out.weight[a]                                                                  # [8, 3]
        torch.testing.assert_close(w.T @ w, 1e-4 * torch.eye(3), atol=1e-8, rtol=1e-4)
    assert torch.all(hidden.bias == 0) and torch.all(out.bias == 0)
    assert not torch.allclose(hidden.weight[0], hidden.weight[1])


def test_agent_mlp_shared():
    torch.manual_seed(0)
    mlp = AgentMLP(4, 3, [5], 2, shared=True)
    hidden, out = [m for m in mlp.net if isinstance(m, AgentLinear)]
    assert hidden.weight.shape == (1, 3, 5) and out.weight.shape == (1, 5, 2)
    x = torch.randn(6, 4, 3)
    ref = torch.tanh(x @ hidden.weight[0] + hidden.bias[0]) @ out.weight[0] + out.bias[0]
    torch.testing.assert_close(mlp(x), ref)
    same = torch.randn(1, 3).expand(4, 3)
    y = mlp(same)
    torch.testing.assert_close(y[0], y[3])


def test_masked_categorical_never_samples_padded_actions():
    logits = torch.zeros(2, 3)
    logits[0, 2] = 50.0                           # even a huge logit on a padded action is ignored
    mask = torch.tensor([[True, True, False], [True, True, True]])
    dist = masked_categorical(logits, mask)
    p = dist.probs
    assert p[0, 2] < 1e-12
    torch.testing.assert_close(p[0, :2], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(p[1], torch.full((3,), 1 / 3))
    samples = dist.sample((500,))
    assert not (samples[:, 0] == 2).any()


@pytest.mark.parametrize("shared", [False, True])
def test_agent_major_mlp_equals_the_einsum_layers(shared):
    """AgentMLP's agent-major baddbmm pass is the same function, with the same gradients, as its layers'
    einsum one after another."""
    torch.manual_seed(0)
    mlp = AgentMLP(5, 7, [16, 8], 3, activation=torch.nn.SiLU, shared=shared).double()
    x = torch.randn(4, 3, 5, 7, dtype=torch.float64)
    out = mlp(x)
    ref = mlp.net(x)
    torch.testing.assert_close(out, ref)
    g1 = torch.autograd.grad(out.square().sum(), list(mlp.parameters()))
    g2 = torch.autograd.grad(mlp.net(x).square().sum(), list(mlp.parameters()))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="expected input"):
        AgentMLP(5, 7, [16], 3)(torch.randn(2, 4, 7))


def test_blocked_grad_equals_the_full_width_gradient():
    """Gradients set block of agents by block (agent_blocks, blocked_grad_) equal the full-width backward."""
    from safenet.nets import agent_blocks, blocked_grad_

    torch.manual_seed(0)
    mlp = AgentMLP(7, 5, [16, 8], 3, activation=torch.nn.Tanh).double()
    x = torch.randn(4, 7, 5, dtype=torch.float64)
    target = torch.randn(4, 7, 3, dtype=torch.float64)
    params = list(mlp.parameters())
    ref = torch.autograd.grad((mlp(x) - target).square().mean(0).sum(), params)
    blocks = agent_blocks(7, 4, 16, block_floats=4 * 16 * 3)
    assert [(b.start, b.stop) for b in blocks] == [(0, 3), (3, 6), (6, 7)]
    blocked_grad_(params, blocks, lambda rows, leaves: (mlp(x[:, rows], leaves) - target[:, rows]).square().mean(0).sum())
    for p, g in zip(params, ref):
        torch.testing.assert_close(p.grad, g)
    assert agent_blocks(7, 4, 16) == [slice(0, 7)]
    with pytest.raises(ValueError, match="expected input"):
        mlp(x, [p.detach()[:2] for p in params])
