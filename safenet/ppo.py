"""Shared pieces of the PPO family (IPPO, MAPPO, HAPPO, MAPPO-L, DEC-MAPPO-L, DPPO, DMPO...).

Algorithms import these instead of re-writing them:

* :func:`clipped_surrogate` — the PPO-clip objective (Schulman et al. 2017, Eq. 7), with the optional
  sequential-update correction factor ``M`` of HAPPO / MAPPO-L (DEC-MAPPO-L Eq. 22);
* :func:`value_loss` — squared or Huber error, optionally clipped around the old prediction;
* :class:`RunningMeanStd` — running normaliser for observations, returns or advantages;
* :func:`minibatches` — shuffled minibatch index sets;
* :class:`AgentPolicy` — per-agent policies (categorical or diagonal Gaussian) of ``n`` agents
  evaluated as one batched network (:class:`safenet.nets.AgentMLP`);
* :func:`gather_neighbourhood` — each agent's κ-hop inputs from a ``[.., n, d]`` tensor, through the
  graph's neighbourhood index (so decentralized inputs never read outside ``N_i^κ``).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .nets import AgentMLP


def clipped_surrogate(logp_new: torch.Tensor, logp_old: torch.Tensor, advantage: torch.Tensor, clip: float,
                      correction: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample PPO-clip objective ``min(ρ·M·A, clip(ρ, 1±ε)·M·A)`` with ``ρ = exp(logp_new − logp_old)``.

    ``correction`` is the (detached) product of the already-updated agents' new/old ratios; it
    multiplies the advantage in both branches (DEC-MAPPO-L Eq. 22, HAPPO). Maximise the mean.
    """
    ratio = torch.exp(logp_new - logp_old)
    adv = advantage if correction is None else correction.detach() * advantage
    return torch.minimum(ratio * adv, torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * adv)


def value_loss(pred: torch.Tensor, target: torch.Tensor, old: torch.Tensor | None = None,
               clip: float | None = None, huber_delta: float | None = None) -> torch.Tensor:
    """Per-sample value error; with ``clip`` the prediction may move at most ``clip`` from ``old``
    (the larger of the clipped and unclipped errors is taken, as in PPO implementations)."""
    def err(x: torch.Tensor) -> torch.Tensor:
        d = target - x
        if huber_delta is None:
            return 0.5 * d ** 2
        a = d.abs()
        return torch.where(a <= huber_delta, 0.5 * d ** 2, huber_delta * (a - 0.5 * huber_delta))

    if clip is None or old is None:
        return err(pred)
    clipped = old + torch.clamp(pred - old, -clip, clip)
    return torch.maximum(err(pred), err(clipped))


class RunningMeanStd:
    """Running mean and variance over the leading axes (Chan et al. parallel update)."""

    def __init__(self, shape: Sequence[int] = (), eps: float = 1e-4) -> None:
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = eps

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(-1, *self.mean.shape)
        if not len(x):
            return
        b_mean, b_var, b_count = x.mean(0), x.var(0), x.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta ** 2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x: np.ndarray, clip: float | None = 10.0) -> np.ndarray:
        out = (x - self.mean) / np.sqrt(self.var + 1e-8)
        return np.clip(out, -clip, clip) if clip is not None else out

    def state_dict(self) -> dict:
        return {"mean": torch.as_tensor(self.mean), "var": torch.as_tensor(self.var), "count": float(self.count)}

    def load_state_dict(self, state: dict) -> None:
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.var = np.asarray(state["var"], dtype=np.float64)
        self.count = float(state["count"])


def minibatches(n_samples: int, n_minibatches: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffle ``range(n_samples)`` and split it into ``n_minibatches`` nearly equal parts."""
    if n_minibatches < 1:
        raise ValueError(f"n_minibatches must be >= 1, got {n_minibatches}")
    perm = rng.permutation(n_samples)
    yield from (part for part in np.array_split(perm, min(n_minibatches, max(1, n_samples))) if len(part))


def gather_neighbourhood(x: torch.Tensor, idx: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """``x[..., n, d]`` → ``[..., n, K * d]``: agent ``i``'s row holds ``x`` of ``N_i^κ`` (self first),
    padded slots zeroed. ``idx, mask`` come from :meth:`safenet.graph.Graph.neighbourhood_index`."""
    idx_t = torch.tensor(np.asarray(idx), dtype=torch.long, device=x.device)      # copies: the index is read-only
    mask_t = torch.tensor(np.asarray(mask), dtype=x.dtype, device=x.device)
    g = x[..., idx_t, :] * mask_t[..., None]                          # [..., n, K, d]
    return g.reshape(*g.shape[:-2], -1)


class AgentPolicy(nn.Module):
    """``n`` per-agent policies in one batched network.

    Discrete: a categorical over each agent's ``action_dims[i]`` actions (padded actions masked).
    Continuous: a diagonal Gaussian with a state-independent log-std per agent and dimension;
    padded dimensions are excluded from log-probabilities and entropies.
    """

    def __init__(self, n_agents: int, in_features: int, action_kind: str, action_dims: Sequence[int],
                 hidden: Sequence[int] = (64, 64), *, shared: bool = False, init_log_std: float = -0.5,
                 activation: type[nn.Module] = nn.Tanh) -> None:
        super().__init__()
        if action_kind not in ("discrete", "continuous"):
            raise ValueError(f"action_kind must be 'discrete' or 'continuous', got {action_kind!r}")
        self.kind = action_kind
        a_max = max(action_dims)
        self.register_buffer("action_mask", torch.arange(a_max)[None, :] < torch.as_tensor(action_dims)[:, None])
        self.net = AgentMLP(n_agents, in_features, hidden, a_max, activation=activation, shared=shared, out_gain=0.01)
        if action_kind == "continuous":
            # shared: one log-std row for every agent, like the network
            self.log_std = nn.Parameter(torch.full((1 if shared else n_agents, a_max), float(init_log_std)))

    def row_params(self) -> list[nn.Parameter]:
        """The per-agent parameters in the order :meth:`distribution`'s ``params`` takes them: the
        network's layers, then the log-stds (continuous)."""
        return [*self.net.parameters(), *([self.log_std] if self.kind == "continuous" else [])]

    def distribution(self, x: torch.Tensor, params: Sequence[torch.Tensor] | None = None,
                     rows: slice | None = None) -> torch.distributions.Distribution:
        """The policies of all agents for ``x[..., n, in]``; or of the agents ``rows`` with their parameter
        rows ``params`` (:meth:`row_params` order, e.g. :func:`safenet.nets.blocked_grad_`'s leaves)."""
        mask = self.action_mask if rows is None else self.action_mask[rows]
        net_params = None if params is None else (params[:-1] if self.kind == "continuous" else params)
        out = self.net(x, net_params)
        if self.kind == "discrete":
            return torch.distributions.Categorical(logits=out.masked_fill(~mask, -1e9))
        log_std = self.log_std if params is None else params[-1]
        return torch.distributions.Normal(out, log_std.exp().expand_as(out))

    def log_prob(self, dist: torch.distributions.Distribution, actions: torch.Tensor,
                 rows: slice | None = None) -> torch.Tensor:
        """``[..., n]`` log-probabilities of ``actions`` (``[..., n]`` ints or ``[..., n, a]`` floats)."""
        if self.kind == "discrete":
            return dist.log_prob(actions.long())
        return (dist.log_prob(actions) * (self.action_mask if rows is None else self.action_mask[rows])).sum(-1)

    def entropy(self, dist: torch.distributions.Distribution, rows: slice | None = None) -> torch.Tensor:
        if self.kind == "discrete":
            return dist.entropy()
        return (dist.entropy() * (self.action_mask if rows is None else self.action_mask[rows])).sum(-1)

    def mode(self, dist: torch.distributions.Distribution) -> torch.Tensor:
        return dist.probs.argmax(-1) if self.kind == "discrete" else dist.mean * self.action_mask

    def sample(self, dist: torch.distributions.Distribution) -> torch.Tensor:
        return dist.sample() if self.kind == "discrete" else dist.sample() * self.action_mask
