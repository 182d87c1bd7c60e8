"""On-policy pieces shared by sequential-update PPO algorithms (HAPPO, MAPPO-L, DEC-MAPPO-L, ...).

Complements :mod:`safenet.ppo` (the surrogate, value loss, normaliser, batched policy):

* :class:`AgentAdam` — Adam over parameters stacked per agent (leading axis ``n``), with a per-agent
  gradient-norm clip and an ``active`` mask: agents outside the mask keep their parameters *and*
  their Adam moments, so one batched network can update any subset of its agents (a stage of the
  sequential κ-hop scheme) without disturbing the others;
* :func:`subset_forward`, :func:`subset_distribution` — evaluate a batched per-agent network
  (:class:`safenet.nets.AgentMLP` / :class:`safenet.ppo.AgentPolicy`) on a subset of its agents
  only, so a stage costs what its agents cost;
* :func:`log_correction` — ``log M`` of the sequential correction factor for every agent from the
  already-updated agents' log-ratios and a predecessor mask (one matmul);
* :func:`neighbourhood_mean` — the mean of a per-agent signal over each agent's neighbourhood
  (e.g. the κ-hop reward ``r̃_i = mean_{j ∈ N_i^κ} r_j``);
* :func:`normalize_per_agent` — advantage normalisation over samples, separately per agent;
* :class:`EpisodeCostTracker` — per-episode cost sums of every copy across rollouts, for
  Lagrange multiplier steps from measured episode costs;
* :func:`neighbourhood_floats` — the communication bookkeeping of κ-hop gathers;
* :class:`AgentGather` — κ-hop inputs of agent-major tensors ``[n, N, d]`` (the layout of
  :class:`safenet.stacked.StackedMLP`), and sums of a per-agent signal over chosen neighbours
  (the sequential correction factor) through the same ``[n, K]`` index: memory and work grow with
  ``n·K``, never ``n²``.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .nets import AgentLinear, AgentMLP

__all__ = ["AgentAdam", "AgentGather", "EpisodeCostTracker", "log_correction", "neighbourhood_floats", "neighbourhood_mean",
           "normalize_per_agent", "subset_distribution", "subset_entropy", "subset_forward", "subset_log_prob"]


class AgentAdam:
    """Adam (Kingma & Ba 2015) on parameters whose leading axis indexes the ``n`` agents.

    ``step(active)`` updates only the agents where ``active`` is true: their moments and step counts
    advance, the others' parameters and moments stay exactly as they were (a plain
    ``torch.optim.Adam`` would still move them through momentum). With ``max_grad_norm`` each
    agent's gradient is clipped to that norm on its own, as if every agent had its own optimiser.
    """

    def __init__(self, params: Iterable[nn.Parameter], n_agents: int, lr: float, *,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-5,
                 max_grad_norm: float | None = None) -> None:
        self.params = [p for p in params]
        for p in self.params:
            if p.dim() < 1 or p.shape[0] != n_agents:
                raise ValueError(f"AgentAdam needs parameters stacked per agent ([{n_agents}, ...]), "
                                 f"got shape {tuple(p.shape)}")
        self.n, self.lr, self.betas, self.eps, self.max_grad_norm = n_agents, lr, betas, eps, max_grad_norm
        self.steps = torch.zeros(n_agents, dtype=torch.float64)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def grad_norms(self) -> torch.Tensor:
        """``[n]``: the norm of each agent's gradient over all parameters."""
        sq = torch.zeros(self.n, dtype=torch.float64)
        for p in self.params:
            if p.grad is not None:
                sq += p.grad.detach().double().reshape(self.n, -1).pow(2).sum(1)
        return sq.sqrt()

    @torch.no_grad()
    def step(self, active: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """One Adam step for the ``active`` agents (all when None); returns the pre-clip grad norms."""
        act = torch.ones(self.n, dtype=torch.bool) if active is None else torch.as_tensor(active, dtype=torch.bool)
        rows = None if bool(act.all()) else torch.nonzero(act).flatten()     # None: every agent
        norms = self.grad_norms()
        scale = torch.ones(self.n, dtype=torch.float64)
        if self.max_grad_norm is not None and self.max_grad_norm > 0:
            scale = torch.clamp(self.max_grad_norm / (norms + 1e-6), max=1.0)
        self.steps += act.double()
        b1, b2 = self.betas
        steps = self.steps if rows is None else self.steps[rows]
        corr1, corr2 = 1.0 - b1 ** steps, 1.0 - b2 ** steps
        sc = scale if rows is None else scale[rows]
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            view = (-1,) + (1,) * (p.dim() - 1)
            g = p.grad if rows is None else p.grad[rows]
            g = g * sc.to(p.dtype).view(view)
            m_new = b1 * (m if rows is None else m[rows]) + (1 - b1) * g
            v_new = b2 * (v if rows is None else v[rows]) + (1 - b2) * g * g
            denom = (v_new / corr2.to(p.dtype).view(view)).sqrt() + self.eps
            delta = self.lr * (m_new / corr1.to(p.dtype).view(view)) / denom
            if rows is None:
                m.copy_(m_new)
                v.copy_(v_new)
                p.sub_(delta)
            else:                                  # only the active agents' rows are written
                m.index_copy_(0, rows, m_new)
                v.index_copy_(0, rows, v_new)
                p.index_add_(0, rows, -delta)
        return norms

    def state_dict(self) -> dict:
        return {"steps": self.steps.clone(), "exp_avg": [m.clone() for m in self.exp_avg],
                "exp_avg_sq": [v.clone() for v in self.exp_avg_sq], "lr": float(self.lr)}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"].clone().to(torch.float64)
        for dst, src in zip(self.exp_avg, state["exp_avg"]):
            dst.copy_(src)
        for dst, src in zip(self.exp_avg_sq, state["exp_avg_sq"]):
            dst.copy_(src)
        self.lr = float(state["lr"])


# ------------------------------------------------------------------------------------------------
# evaluating a subset of the agents of a batched network
# ------------------------------------------------------------------------------------------------

def subset_forward(mlp: AgentMLP, x: torch.Tensor, agents: torch.Tensor | None = None) -> torch.Tensor:
    """``mlp`` evaluated for ``agents`` only: ``x[..., k, in]`` → ``[..., k, out]`` (all agents when None)."""
    if agents is None:
        return mlp(x)
    for layer in mlp.net:
        if isinstance(layer, AgentLinear):
            w = layer.weight.expand(layer.n_agents, -1, -1)[agents]
            b = layer.bias.expand(layer.n_agents, -1)[agents]
            x = torch.einsum("...ki,kio->...ko", x, w) + b
        else:
            x = layer(x)
    return x


def subset_distribution(policy, x: torch.Tensor, agents: torch.Tensor | None = None) -> torch.distributions.Distribution:
    """The action distributions of ``agents`` of a :class:`safenet.ppo.AgentPolicy` (``x[..., k, in]``)."""
    if agents is None:
        return policy.distribution(x)
    out = subset_forward(policy.net, x, agents)
    if policy.kind == "discrete":
        return torch.distributions.Categorical(logits=out.masked_fill(~policy.action_mask[agents], -1e9))
    return torch.distributions.Normal(out, policy.log_std[agents].exp().expand_as(out))


def subset_log_prob(policy, dist: torch.distributions.Distribution, actions: torch.Tensor,
                    agents: torch.Tensor | None = None) -> torch.Tensor:
    """``[..., k]`` log-probabilities (joint over a continuous action's real dimensions)."""
    if policy.kind == "discrete":
        return dist.log_prob(actions.long())
    mask = policy.action_mask if agents is None else policy.action_mask[agents]
    return (dist.log_prob(actions) * mask).sum(-1)


def subset_entropy(policy, dist: torch.distributions.Distribution, agents: torch.Tensor | None = None) -> torch.Tensor:
    if policy.kind == "discrete":
        return dist.entropy()
    mask = policy.action_mask if agents is None else policy.action_mask[agents]
    return (dist.entropy() * mask).sum(-1)


# ------------------------------------------------------------------------------------------------
# the sequential scheme, κ-hop signals, normalisation
# ------------------------------------------------------------------------------------------------

def log_correction(log_ratio: torch.Tensor, predecessors: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``log M`` for every agent: ``log M_i = Σ_{j ∈ pred(i)} log(π̄^j / π^j)``.

    ``log_ratio[..., n]`` holds the new/old log-probability ratios of the agents updated so far (0 for
    the others); ``predecessors[i, j]`` is true when ``j`` counts for ``i`` (see
    :meth:`safenet.schedule.UpdatePlan.predecessor_mask`). The factor is per sample: a continuous
    action's ratio is the product over its dimensions (the joint ratio of the theory).
    """
    pred = torch.as_tensor(np.asarray(predecessors), dtype=log_ratio.dtype, device=log_ratio.device)
    return log_ratio @ pred.T


def neighbourhood_mean(x: np.ndarray, idx: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x[..., n]`` → ``[..., n]`` with entry ``i`` the mean of ``x`` over the real slots of ``idx[i]``."""
    w = np.asarray(mask, dtype=np.float64)
    return (np.asarray(x, dtype=np.float64)[..., idx] * w).sum(-1) / w.sum(-1)


def normalize_per_agent(adv: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """``adv[S, n, ...]`` standardised over the sample axis, separately for each agent (and column)."""
    return (adv - adv.mean(axis=0, keepdims=True)) / (adv.std(axis=0, keepdims=True) + eps)


def neighbourhood_floats(mask: np.ndarray, floats_per_agent: float) -> float:
    """Floats all agents receive when each reads ``floats_per_agent`` from every *other* member of
    its neighbourhood (``mask`` from :meth:`safenet.graph.Graph.neighbourhood_index`; slot 0 is self)."""
    return float((np.asarray(mask, dtype=bool).sum(1) - 1).clip(min=0).sum() * floats_per_agent)


class EpisodeCostTracker:
    """Per-episode cost sums of ``B`` copies across consecutive rollouts.

    ``add(cost[T, B, n, m], done[T, B])`` returns the totals ``[E, n, m]`` of the episodes that ended
    in this rollout (an episode may have started in an earlier one).
    """

    def __init__(self, num_envs: int, shape: Sequence[int]) -> None:
        self.running = np.zeros((num_envs, *shape))

    def add(self, cost: np.ndarray, done: np.ndarray) -> np.ndarray:
        if cost.shape[1] != self.running.shape[0]:          # another batch size (e.g. after a resume)
            self.running = np.zeros((cost.shape[1], *self.running.shape[1:]))
        ended = []
        for t in range(cost.shape[0]):
            self.running += cost[t]
            for b in np.flatnonzero(done[t]):
                ended.append(self.running[b].copy())
                self.running[b] = 0.0
        return np.stack(ended) if ended else np.zeros((0, *self.running.shape[1:]))

    def state_dict(self) -> dict:
        return {"running": torch.as_tensor(self.running)}

    def load_state_dict(self, state: dict) -> None:
        self.running = np.asarray(state["running"], dtype=np.float64)


class AgentGather:
    """Agent ``i`` reads the agents ``idx[i, :]`` (real where ``mask[i, :]``, self first), agent-major.

    ``idx, mask`` come from :meth:`safenet.graph.Graph.neighbourhood_index`.
    """

    def __init__(self, idx: np.ndarray, mask: np.ndarray, device: torch.device | str = "cpu") -> None:
        idx, mask = np.asarray(idx), np.asarray(mask, dtype=bool)
        self.n, self.k = idx.shape
        self.identity = self.k == 1 and bool(np.array_equal(idx[:, 0], np.arange(self.n)))
        self.idx = torch.tensor(idx, dtype=torch.long, device=device)
        self.mask = torch.tensor(mask, device=device)
        self.weight = self.mask.float()

    def __call__(self, xa: torch.Tensor, agents: torch.Tensor | None = None) -> torch.Tensor:
        """``xa[n, N, d]`` → ``[k, N, K * d]``: row ``i`` of ``agents`` (all when None) holds ``xa`` of
        ``N_i`` slot after slot, padded slots zero."""
        if self.identity:
            return xa if agents is None else xa.index_select(0, agents)
        idx = self.idx if agents is None else self.idx.index_select(0, agents)
        w = self.weight if agents is None else self.weight.index_select(0, agents)
        g = xa[idx] * w.to(xa.dtype)[:, :, None, None]                       # [k, K, N, d]
        return g.permute(0, 2, 1, 3).reshape(idx.shape[0], xa.shape[1], -1)

    def select_sum(self, values: torch.Tensor, select: torch.Tensor, agents: torch.Tensor) -> torch.Tensor:
        """``[k, N]``: for each of ``agents``, the sum of ``values[j]`` (``values[n, N]``) over its slots
        ``j`` where ``select[i, slot]`` (``[n, K]`` bool, a subset of the mask)."""
        idx = self.idx.index_select(0, agents)
        w = select.index_select(0, agents).to(values.dtype)
        return (values[idx] * w[:, :, None]).sum(1)

    def slots_of(self, members: Sequence[Sequence[int]]) -> torch.Tensor:
        """``[n, K]`` bool: slot ``(i, s)`` is real and its agent ``idx[i, s]`` is in ``members[i]``
        (e.g. :attr:`safenet.schedule.UpdatePlan.predecessors`)."""
        idx = self.idx.cpu().numpy()
        mask = self.mask.cpu().numpy()
        sel = np.zeros((self.n, self.k), dtype=bool)
        for i, mem in enumerate(members):
            if len(mem):
                sel[i] = np.isin(idx[i], np.asarray(mem)) & mask[i]
        return torch.as_tensor(sel, device=self.idx.device)
