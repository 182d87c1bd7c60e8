"""Layers with a leading *copy* axis: parameters ``[C, ...]``, inputs ``[..., C, features]``.

Each DADC coordinator owns its networks with ``C = 1`` (:mod:`safenet_dadc.coordinator`); the copy
axis and the per-copy helpers (initialisation from a seed per copy, per-copy gradient clipping and
statistics, copy-by-copy weight gradients) keep the layers usable for stacked copies too. Stacking
the agents' copies in one tensor was tried first and is *not* bit-exact: vectorised kernels round a
copy's entries differently depending on where the copy sits in memory (strided bias-gradient sums,
matmul blocking, the scalar tail of elementwise ``tanh``/``exp``), so stacked copies drift apart at
the 1e-8 level. Separate coordinators with identical shapes are bit-identical by construction.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import nn

import math



class _CopyAffine(torch.autograd.Function):
    """``y[..., c, :] = x[..., c, :] @ w[c]``, computed copy by copy on fresh (equally aligned) buffers, forward
    and backward: a batched matmul may sum a copy's terms in an order that depends on where the copy sits
    in memory, which would let identical copies drift apart."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:      # noqa: D102
        ctx.save_for_backward(x, w)
        return torch.stack([x[..., c, :].clone() @ w[c] for c in range(w.shape[0])], -2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):                                   # noqa: D102
        x, w = ctx.saved_tensors
        C, i, o = w.shape
        gs = [grad[..., c, :].clone() for c in range(C)]
        grad_x = torch.stack([gs[c] @ w[c].T for c in range(C)], -2)
        grad_w = torch.stack([x[..., c, :].reshape(-1, i).clone().T @ gs[c].reshape(-1, o) for c in range(C)])
        return grad_x, grad_w


class CopyLinear(nn.Module):
    """``y[..., c, :] = [x[..., c, :], 1] @ [[W_c], [b_c]]``: one affine map per copy, the bias inside the matmul."""

    def __init__(self, copies: int, in_features: int, out_features: int, gain: float | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(copies, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(copies, out_features))
        with torch.no_grad():
            if gain is None:                      # PyTorch's default Linear init
                bound = 1.0 / math.sqrt(in_features)
                self.weight.uniform_(-bound, bound)
                self.bias.uniform_(-bound, bound)
            else:
                for w in self.weight:
                    nn.init.orthogonal_(w, gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = x.new_ones(*x.shape[:-1], 1)
        w = torch.cat([self.weight, self.bias[:, None, :]], 1)
        return _CopyAffine.apply(torch.cat([x, ones], -1), w)


class CopyMLP(nn.Module):
    """Tanh MLP per copy (orthogonal init, ``out_gain`` on the last layer)."""

    def __init__(self, copies: int, in_features: int, hidden: Sequence[int], out_features: int,
                 out_gain: float = 1.0) -> None:
        super().__init__()
        sizes = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = i == len(sizes) - 2
            layers.append(CopyLinear(copies, a, b, gain=out_gain if last else math.sqrt(2)))
            if not last:
                layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CopyGRUCell(nn.Module):
    """A GRU cell per copy: ``h' = (1 - z) n + z h`` with the usual reset/update gates."""

    def __init__(self, copies: int, in_features: int, hidden: int) -> None:
        super().__init__()
        self.x2h = CopyLinear(copies, in_features, 3 * hidden)
        self.h2h = CopyLinear(copies, hidden, 3 * hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        xr, xz, xn = self.x2h(x).chunk(3, -1)
        hr, hz, hn = self.h2h(h).chunk(3, -1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1.0 - z) * n + z * h


class AisEncoder(nn.Module):
    """§5 item 1(i): ``X_t = GRU(tanh(W [Z_t, φ(θ_{t-1})]), X_{t-1})``, ``X_{-1} = 0``."""

    def __init__(self, copies: int, in_features: int, hidden: int, ais_dim: int) -> None:
        super().__init__()
        self.inp = CopyLinear(copies, in_features, hidden)
        self.gru = CopyGRUCell(copies, hidden, ais_dim)
        self.ais_dim = ais_dim

    def step(self, inputs: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.gru(torch.tanh(self.inp(inputs)), h)

    def unroll(self, inputs: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """``inputs[T, B, C, f]``, ``start[T, B]`` (episode starts) -> ``X[T, B, C, d]``."""
        T, B, C = inputs.shape[:3]
        h = inputs.new_zeros(B, C, self.ais_dim)
        out = []
        for t in range(T):
            h = self.step(inputs[t], h * (~start[t]).to(h.dtype)[:, None, None])
            out.append(h)
        return torch.stack(out)


def mlp(copies: int, in_features: int, hidden: Sequence[int], out: int, out_gain: float = 1.0) -> CopyMLP:
    return CopyMLP(copies, in_features, list(hidden), out, out_gain=out_gain)


def init_copies(factory: Callable[[int], nn.Module], seeds: Sequence[int]) -> nn.Module:
    """Build ``factory(C)`` whose copy ``c`` is initialised exactly as ``factory(1)`` under ``seeds[c]``:
    copies with equal seeds start bit-identical, as agents that each initialise their own copy would."""
    full = factory(len(seeds))
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        for c, seed in enumerate(seeds):
            torch.manual_seed(int(seed))
            one = factory(1)
            for p_full, p_one in zip(full.parameters(), one.parameters()):
                p_full[c].copy_(p_one[0])
    return full


def clip_grad_per_copy(params: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale each copy's gradient to norm ``<= max_norm`` (copy ``c``'s norm uses only its own slices)."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return torch.zeros(())
    C = params[0].shape[0]
    # per copy, on fresh (equally aligned) buffers so every copy sums in the same order
    norm = torch.stack([torch.sqrt(sum(p.grad[c].clone().pow(2).sum() for p in params)) for c in range(C)])
    if max_norm > 0:
        scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for p in params:
            p.grad.mul_(scale.view(-1, *([1] * (p.dim() - 1))))
    return norm


def per_copy(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn`` applied to each copy's ``x[..., c]`` on its own fresh buffer, stacked on the last axis:
    statistics that must come out bit-identical for identical copies."""
    return torch.stack([fn(x[..., c].clone()) for c in range(x.shape[-1])], -1)


def copy_divergence(modules: Iterable[nn.Module]) -> float:
    """Largest ``|param[c] - param[0]|`` over all parameters and copies (0.0: all copies identical)."""
    worst = 0.0
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                if p.shape[0] > 1:
                    worst = max(worst, float((p - p[:1]).abs().max()))
    return worst


class _BroadcastPerCopy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, param: torch.Tensor, shape: torch.Size) -> torch.Tensor:    # noqa: D102
        return param.expand(shape).clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):                                        # noqa: D102
        C, d = grad.shape[-2:]
        flat = grad.reshape(-1, C, d)
        # each copy's gradient summed on its own fresh buffer: the same order in every copy
        return torch.stack([flat[:, c].clone().sum(0) for c in range(C)]), None


def broadcast_per_copy(param: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``param[C, d]`` broadcast to ``like[..., C, d]`` with a gradient summed per copy in the same order in
    every copy (a plain ``expand`` sums along strided memory, whose order depends on the copy's offset)."""
    return _BroadcastPerCopy.apply(param, like.shape)
