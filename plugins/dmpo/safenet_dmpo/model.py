"""Localized predictive models of DMPO and the environment buffer they learn from.

Agent ``i``'s model ``p_ψi(s'_i, r_i, d_i | s_{N_i}, a_i)`` reads the states of its
``model_kappa``-hop neighbourhood (gathered through the graph's index, self first) and its own
action, and predicts its next state as a residual ``s'_i = s_i + Δ``, its reward, its
termination (a logit) and, for constrained games, its costs. It is the MLP form of the model: one
MLP per agent over the concatenated neighbourhood, run for all agents as one batched op. We chose it
over the 2022 paper's single message-passing step because, with separate per-agent networks and a
fixed neighbourhood order, an MLP over the gathered states sees the same information (a one-round
graph convolution is a constrained function of exactly these inputs), trains faster, and reaches
any κ by widening the gather instead of stacking rounds.

Loss (Eq. 6, plus the reward/termination/cost heads): MSE on the normalised state residual
``+ reward_weight·MSE(reward) + BCE(done) + MSE(costs)``. Errors are reported on a held-out share
of the buffer as MSE divided by the target's variance, per agent.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from safenet.nets import BLOCK_FLOATS, AgentLinear, AgentMLP, agent_blocks, blocked_grad_
from safenet.ppo import gather_neighbourhood


class EnvBuffer:
    """Ring buffer ``D^E`` of real transitions, one row per (step, copy): ``[C, n, ...]``.

    Each row is assigned once, at insertion, to the training or the held-out split.
    """

    def __init__(self, capacity: int, n: int, o: int, action_shape: tuple[int, ...], m: int,
                 holdout: float, rng: np.random.Generator) -> None:
        self.capacity, self.holdout, self.rng = capacity, holdout, rng
        self.obs = np.zeros((capacity, n, o), np.float32)
        self.next_obs = np.zeros((capacity, n, o), np.float32)
        self.actions = np.zeros((capacity, n, *action_shape), np.float32)
        self.reward = np.zeros((capacity, n), np.float32)
        self.cost = np.zeros((capacity, n, m), np.float32)
        self.term = np.zeros((capacity,), np.float32)
        self.is_holdout = np.zeros((capacity,), bool)
        self.size = 0
        self.ptr = 0

    def add(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, reward: np.ndarray,
            cost: np.ndarray, term: np.ndarray) -> None:
        """Append ``k`` rows (arrays with a leading ``k``)."""
        k = obs.shape[0]
        idx = (self.ptr + np.arange(k)) % self.capacity
        self.obs[idx], self.next_obs[idx], self.actions[idx] = obs, next_obs, actions
        self.reward[idx], self.cost[idx], self.term[idx] = reward, cost, term
        self.is_holdout[idx] = self.rng.random(k) < self.holdout
        self.ptr = int((self.ptr + k) % self.capacity)
        self.size = int(min(self.capacity, self.size + k))

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(self.size)
        hold = self.is_holdout[: self.size]
        return rows[~hold], rows[hold]

    def batch(self, rows: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(getattr(self, k)[rows], device=device) for k in
                ("obs", "next_obs", "actions", "reward", "cost", "term")}


class LocalModels(nn.Module):
    """The ``n`` localized models, batched. Inputs and outputs are normalised with buffer statistics."""

    #: floats one activation of a block of agents may hold in a fit step (see :func:`safenet.nets.agent_blocks`)
    block_floats: int = BLOCK_FLOATS

    def __init__(self, n: int, o: int, m: int, action_kind: str, action_dim: int, idx: np.ndarray,
                 mask: np.ndarray, obs_mask: np.ndarray, hidden: tuple[int, ...], shared: bool = False) -> None:
        super().__init__()
        self.n, self.o, self.m = n, o, m
        self.kind, self.action_dim = action_kind, action_dim
        self.idx, self.mask = np.asarray(idx), np.asarray(mask)
        in_features = idx.shape[1] * o + action_dim
        self.net = AgentMLP(n, in_features, hidden, o + 2 + m, activation=nn.SiLU, shared=shared)
        self.register_buffer("obs_mask", torch.as_tensor(obs_mask, dtype=torch.float32))
        for name, shape in (("obs", (n, o)), ("delta", (n, o)), ("reward", (n,)), ("cost", (n, m))):
            self.register_buffer(f"{name}_mean", torch.zeros(shape))
            self.register_buffer(f"{name}_std", torch.ones(shape))

    def set_statistics(self, data: dict[str, torch.Tensor]) -> None:
        """Normalisation from the training rows (kept in the state dict with the weights)."""
        delta = data["next_obs"] - data["obs"]
        for name, x in (("obs", data["obs"]), ("delta", delta), ("reward", data["reward"]), ("cost", data["cost"])):
            getattr(self, f"{name}_mean").copy_(x.mean(0))
            getattr(self, f"{name}_std").copy_(x.std(0).clamp_min(1e-4) if x.shape[0] > 1 else torch.ones_like(x[0]))

    def encode_action(self, actions: torch.Tensor) -> torch.Tensor:
        if self.kind == "discrete":
            return F.one_hot(actions.long(), self.action_dim).float()
        return actions.float()

    def inputs(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``[..., n, K·o + a]``: agent ``i``'s normalised neighbourhood states and its own action."""
        x = (obs - self.obs_mean) / self.obs_std
        return torch.cat([gather_neighbourhood(x, self.idx, self.mask), self.encode_action(actions)], dim=-1)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Normalised outputs ``[..., n, o + 2 + m]``: residual, reward, done logit, costs."""
        return self.net(self.inputs(obs, actions))

    def loss(self, data: dict[str, torch.Tensor], reward_weight: float, inputs: torch.Tensor | None = None,
             rows: slice | None = None, params: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Σ over agents of each agent's mean loss (the agents' models are independent). With ``rows``
        and ``params`` (their parameter rows, :func:`safenet.nets.blocked_grad_`): the sum over those
        agents only, from ``inputs`` (:meth:`inputs` of all agents)."""
        sel = slice(None) if rows is None else rows
        x = self.inputs(data["obs"], data["actions"]) if inputs is None else inputs
        out = self.net(x if rows is None else x[:, rows], params)
        o, m = self.o, self.m
        obs, obs_mask = data["obs"][:, sel], self.obs_mask[sel]
        delta_t = (data["next_obs"][:, sel] - obs - self.delta_mean[sel]) / self.delta_std[sel]
        r_t = (data["reward"][:, sel] - self.reward_mean[sel]) / self.reward_std[sel]
        done_t = data["term"][:, None].expand(-1, out.shape[-2])
        loss = (((out[..., :o] - delta_t) ** 2) * obs_mask).sum(-1) / obs_mask.sum(-1).clamp_min(1.0)
        loss = loss + reward_weight * (out[..., o] - r_t) ** 2
        loss = loss + F.binary_cross_entropy_with_logits(out[..., o + 1], done_t, reduction="none")
        if m:
            c_t = (data["cost"][:, sel] - self.cost_mean[sel]) / self.cost_std[sel]
            loss = loss + ((out[..., o + 2:] - c_t) ** 2).mean(-1)
        return loss.mean(0).sum()

    def agent_blocks(self, samples: int) -> list[slice] | None:
        """Blocks of agents for a fit step on ``samples`` rows (None: one full-width pass)."""
        linears = [m for m in self.net.net if isinstance(m, AgentLinear)]
        if linears[0].shared:
            return None
        width = max(lin.in_features for lin in linears)                  # the input and every hidden layer
        blocks = agent_blocks(self.n, samples, width, self.block_floats)
        return blocks if len(blocks) > 1 else None

    @torch.no_grad()
    def predict(self, obs: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Next state, reward, termination probability and costs in the game's units."""
        out = self(obs, actions)
        o = self.o
        nxt = (obs + out[..., :o] * self.delta_std + self.delta_mean) * self.obs_mask
        return {"next_obs": nxt, "reward": out[..., o] * self.reward_std + self.reward_mean,
                "done": torch.sigmoid(out[..., o + 1]),
                "cost": out[..., o + 2:] * self.cost_std + self.cost_mean}

    @torch.no_grad()
    def errors(self, data: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """Per-agent MSE / variance of the target (next state, state change, reward) on ``data``."""
        pred = self.predict(data["obs"], data["actions"])
        mask = self.obs_mask

        def ratio(p: torch.Tensor, t: torch.Tensor, per_dim: bool) -> np.ndarray:
            mse = ((p - t) ** 2).mean(0)
            var = t.var(0).clamp_min(1e-8)
            if per_dim:     # pooled over the state's dimensions: Σ MSE / Σ Var
                return ((mse * mask).sum(-1) / (var * mask).sum(-1).clamp_min(1e-8)).cpu().numpy()
            return (mse / var).cpu().numpy()

        delta_p, delta_t = pred["next_obs"] - data["obs"], data["next_obs"] - data["obs"]
        return {"state": ratio(pred["next_obs"], data["next_obs"], True),
                "delta": ratio(delta_p, delta_t, True),
                "reward": ratio(pred["reward"], data["reward"], False)}


def fit(model: LocalModels, opt: torch.optim.Optimizer, buffer: EnvBuffer, steps: int, batch_size: int,
        reward_weight: float, rng: np.random.Generator, device: torch.device | str = "cpu") -> dict[str, Any]:
    """``steps`` gradient steps of the model loss on the buffer's training rows (on ``device``, where the
    model lives); held-out errors after."""
    train_rows, hold_rows = buffer.split()
    if len(hold_rows) < 2:                      # tiny buffers (tests): measure on the training rows
        hold_rows = train_rows
    model.set_statistics(buffer.batch(train_rows, device))
    losses = []
    for _ in range(steps):
        data = buffer.batch(rng.choice(train_rows, size=min(batch_size, len(train_rows)), replace=False), device)
        blocks = model.agent_blocks(len(data["obs"]))
        if blocks is None:
            loss = model.loss(data, reward_weight)
            opt.zero_grad()
            loss.backward()
        else:           # large n: block of agents by block, the same gradient with activations in cache
            inputs, parts = model.inputs(data["obs"], data["actions"]), []

            def block_loss(rows: slice, leaves: list[torch.Tensor]) -> torch.Tensor:
                parts.append(model.loss(data, reward_weight, inputs, rows, leaves))
                return parts[-1]

            blocked_grad_(list(model.net.parameters()), blocks, block_loss)
            loss = torch.stack(parts).sum()
        opt.step()
        losses.append(float(loss.detach()))
    errs = model.errors(buffer.batch(hold_rows[:20000], device))
    return {"loss": float(np.mean(losses[-20:])) if losses else float("nan"), "errors": errs}
