"""Per-agent networks batched into one tensor op.

``n`` agents with their own parameters are evaluated together: weights are stacked as
``[n, in, out]`` and a layer is one ``einsum`` over inputs ``[..., n, in]``, never a Python loop over
agents. :class:`AgentMLP` runs its layers *agent-major*: the input is viewed as ``[n, N, in]`` once
and every layer is one ``baddbmm`` over the agents (no copies between layers), the same function of
the same parameters as the layer-by-layer ``einsum``. Parameter sharing is the special case
``n_param = 1`` (broadcast).

At large ``n`` a full-width pass is bound by memory traffic (its activations ``[n, N, hidden]``
leave the caches). :func:`blocked_grad_` computes the same gradients block of agents by block of
agents (:func:`agent_blocks`), each block's graph small enough to stay in cache: agents' networks
are independent and the loss is a sum over agents, so every agent's gradient is the one of the
full-width pass.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn


class AgentLinear(nn.Module):
    """``y[..., i, :] = x[..., i, :] @ W[i] + b[i]`` for every agent ``i`` at once."""

    def __init__(self, n_agents: int, in_features: int, out_features: int, *, shared: bool = False) -> None:
        super().__init__()
        k = 1 if shared else n_agents
        self.shared = shared
        self.n_agents, self.in_features, self.out_features = n_agents, in_features, out_features
        self.weight = nn.Parameter(torch.empty(k, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(k, out_features))
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] != self.n_agents and not self.shared:
            raise ValueError(f"expected input [..., {self.n_agents}, {self.in_features}], got {tuple(x.shape)}")
        return torch.einsum("...ni,nio->...no", x, self.weight.expand(x.shape[-2], -1, -1)) + self.bias

    def orthogonal_(self, gain: float = 1.0) -> "AgentLinear":
        with torch.no_grad():
            for w in self.weight:
                nn.init.orthogonal_(w, gain)
            self.bias.zero_()
        return self


class AgentMLP(nn.Module):
    """A stack of :class:`AgentLinear` layers with a nonlinearity: one MLP per agent, run batched."""

    def __init__(self, n_agents: int, in_features: int, hidden: Sequence[int], out_features: int, *,
                 activation: type[nn.Module] = nn.Tanh, shared: bool = False, out_gain: float = 1.0) -> None:
        super().__init__()
        sizes = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers.append(AgentLinear(n_agents, a, b, shared=shared).orthogonal_(math.sqrt(2)))
            layers.append(activation())
        layers.pop()
        layers[-1].orthogonal_(out_gain)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, params: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """``x[..., n, in]`` → ``[..., n, out]``, agent-major inside (see the module docstring).

        ``params``: other rows of the parameters (``weight, bias`` of each layer in order, e.g.
        :func:`blocked_grad_`'s leaves of ``k`` agents) for inputs ``x[..., k, in]``."""
        first = self.net[0]
        n = x.shape[-2]
        agents = first.n_agents if params is None else params[0].shape[0]
        if x.dim() < 2 or (n != agents and not first.shared) or x.shape[-1] != first.in_features:
            raise ValueError(f"expected input [..., {agents}, {first.in_features}], got {tuple(x.shape)}")
        lead = x.shape[:-2]
        z = x.reshape(-1, n, x.shape[-1]).transpose(0, 1)                 # [n, N, in], a strided view
        N = z.shape[1]
        k = 0
        for layer in self.net:
            if not isinstance(layer, AgentLinear):
                z = layer(z)
                continue
            w, b = (layer.weight, layer.bias) if params is None else (params[k], params[k + 1])
            k += 2
            if layer.shared:                                             # one weight: all agents' rows at once
                z = torch.addmm(b, z.reshape(n * N, -1), w[0]).view(n, N, -1)
            else:
                z = torch.baddbmm(b.unsqueeze(1), z, w)
        return z.transpose(0, 1).reshape(*lead, n, z.shape[-1])


#: floats one activation of an agent block may hold (``k × samples × width``): a block's graph stays in cache
BLOCK_FLOATS = 2 ** 20


def agent_blocks(n_agents: int, samples: int, width: int, block_floats: int = BLOCK_FLOATS) -> list[slice]:
    """Consecutive slices of the agents, each with at most ``block_floats`` per activation
    (``k × samples × width``; one slice, all agents, when the whole pass is that small)."""
    per = max(1, block_floats // max(1, samples * width))
    return [slice(a, min(a + per, n_agents)) for a in range(0, n_agents, per)]


def blocked_grad_(params: Sequence[nn.Parameter], blocks: Sequence[slice],
                  block_loss: Callable[[slice, list[torch.Tensor]], torch.Tensor]) -> None:
    """Set ``p.grad`` of per-agent parameters ``params`` (rows = agents) block by block.

    ``block_loss(rows, leaves)`` returns the loss of the agents ``rows`` computed from ``leaves``:
    row slices of ``params`` (views, as new leaves of a small graph). The total loss must be the sum
    of the blocks' losses and each block's loss must depend on its own agents' parameters only; then
    ``p.grad`` equals the gradient of the total loss, with at any time only one block's activations
    alive (in cache at large ``n``).
    """
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        else:
            p.grad.zero_()
    for rows in blocks:
        leaves = [p.detach()[rows].requires_grad_() for p in params]
        grads = torch.autograd.grad(block_loss(rows, leaves), leaves, allow_unused=True)
        for p, g in zip(params, grads):
            if g is not None:
                p.grad[rows] = g


def masked_categorical(logits: torch.Tensor, action_mask: torch.Tensor) -> torch.distributions.Categorical:
    """A categorical over each agent's real actions (padded actions get probability 0)."""
    return torch.distributions.Categorical(logits=logits.masked_fill(~action_mask, -1e9))


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict) -> None:
    """``opt.load_state_dict(state)`` keeping ``opt``'s learning rates: moments and step counts come from
    the checkpoint, the learning rate from the run's config (so ``--resume ... algo.lr=...`` takes effect)."""
    lrs = [g["lr"] for g in opt.param_groups]
    opt.load_state_dict(state)
    for g, lr in zip(opt.param_groups, lrs):
        g["lr"] = lr
