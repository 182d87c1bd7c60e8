"""Per-agent networks batched into one tensor op.

``n`` agents with their own parameters are evaluated together: weights are stacked as
``[n, in, out]`` and a layer is one ``einsum`` over inputs ``[..., n, in]``, never a Python loop over
agents. :class:`AgentMLP` runs its layers *agent-major*: the input is viewed as ``[n, N, in]`` once
and every layer is one ``baddbmm`` over the agents (no copies between layers), the same function of
the same parameters as the layer-by-layer ``einsum``. Parameter sharing is the special case
``n_param = 1`` (broadcast).
"""
from __future__ import annotations

import math
from typing import Sequence

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x[..., n, in]`` → ``[..., n, out]``, agent-major inside (see the module docstring)."""
        first = self.net[0]
        n = x.shape[-2]
        if x.dim() < 2 or (n != first.n_agents and not first.shared) or x.shape[-1] != first.in_features:
            raise ValueError(f"expected input [..., {first.n_agents}, {first.in_features}], got {tuple(x.shape)}")
        lead = x.shape[:-2]
        z = x.reshape(-1, n, x.shape[-1]).transpose(0, 1)                 # [n, N, in], a strided view
        N = z.shape[1]
        for layer in self.net:
            if not isinstance(layer, AgentLinear):
                z = layer(z)
            elif layer.shared:                                           # one weight: all agents' rows at once
                z = torch.addmm(layer.bias, z.reshape(n * N, -1), layer.weight[0]).view(n, N, -1)
            else:
                z = torch.baddbmm(layer.bias.unsqueeze(1), z, layer.weight)
        return z.transpose(0, 1).reshape(*lead, n, z.shape[-1])


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
