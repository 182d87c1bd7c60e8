"""Independent REINFORCE: every agent learns its own softmax policy from its own samples.

Agent ``i`` keeps a policy ``π_i(a_i | o_i) = softmax(f_i(o_i))`` on its local observation only
(``f_i`` is linear by default, an MLP with ``algo.hidden``). The ``n`` policies are evaluated as one
batched op (:class:`safenet.nets.AgentMLP`: stacked weights, no Python loop over agents). Per
update:

1. the trainer collects ``algo.episodes_per_update`` whole episodes in each game copy;
2. each agent's return ``G_t^i = Σ_k γ^k (r_i - λ_i · c_i)(t + k)`` is computed from its own reward
   and costs (:func:`safenet.rollout.discounted_returns`);
3. one Adam step on ``-mean_t log π_i(a_i(t) | o_i(t)) · Â_t^i - β · entropy``, with ``Â`` the
   return standardised per agent (a constant baseline);
4. the Lagrange multipliers ``λ_i`` move with agent ``i``'s measured episode cost against its limit
   (:class:`safenet.lagrange.LagrangeMultipliers`).

Nothing is exchanged between agents, which :meth:`IndependentReinforce.communication` reports as zero.
It is a baseline and a template, not a strong method: agents ignore that their neighbours learn too.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from safenet.algorithm import Algorithm
from safenet.errors import IncompatibleError
from safenet.game import GameSpec
from safenet.lagrange import LagrangeMultipliers
from safenet.nets import AgentMLP, masked_categorical
from safenet.rollout import Rollout, discounted_returns

from .config import ReinforceConfig


class IndependentReinforce(Algorithm):
    """The trainer calls ``act`` every step, ``update`` once per iteration, ``state_dict`` to checkpoint."""

    def __init__(self, spec: GameSpec, cfg: ReinforceConfig, *, seed: int = 0, device: str = "cpu") -> None:
        super().__init__(spec, cfg, seed=seed, device=device)
        if spec.action_kind != "discrete":
            # the registry already refuses such envs through `requires`; this guards direct use
            raise IncompatibleError(f"independent-reinforce needs discrete actions; {spec.name!r} has "
                                    f"{spec.action_kind} actions")
        # steps per game copy per iteration (the trainer reads this unless trainer.rollout_steps is set)
        self.rollout_steps = spec.episode_length * cfg.episodes_per_update
        with torch.random.fork_rng(devices=[]):   # seeded init without touching the global RNG
            torch.manual_seed(seed)
            self.policy = AgentMLP(spec.n, spec.obs_dim, list(cfg.hidden), spec.action_dim, out_gain=0.01)
        self.policy.to(device)
        self.optim = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr)
        self.action_mask = torch.as_tensor(spec.action_mask(), device=device)   # [n, A]: real actions
        self.gen = torch.Generator().manual_seed(seed)                             # action sampling
        self.m_costs = spec.max_costs
        self.lagrange = (LagrangeMultipliers.from_config(spec.cost_limit_array(), spec.cost_mask(), cfg.lagrange)
                         if self.m_costs and cfg.lagrange.enabled else None)

    # -- acting ---------------------------------------------------------------------------------
    def _logits(self, obs: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device)        # [..., n, o]
        return self.policy(x).masked_fill(~self.action_mask, -1e9)                # [..., n, A]

    def act(self, obs: np.ndarray, info: dict, deterministic: bool = False) -> tuple[np.ndarray, dict]:
        with torch.no_grad():
            logits = self._logits(obs)
            if deterministic:
                actions = logits.argmax(-1)
            else:
                probs = torch.softmax(logits, -1).cpu()
                flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=self.gen)
                actions = flat.reshape(probs.shape[:-1])
        return actions.cpu().numpy().astype(np.int64), {}                          # [B, n] integers

    # -- learning -------------------------------------------------------------------------------
    def update(self, rollout: Rollout) -> dict[str, float]:
        cfg, spec = self.cfg, self.spec
        done = rollout.done                                                        # [T, B]
        shaped = rollout.reward.astype(np.float64)                                 # [T, B, n]
        if self.lagrange is not None:
            lam = self.lagrange.value                                              # [n, m]
            shaped = shaped - (rollout.cost[..., : self.m_costs] * lam).sum(-1)
        returns = discounted_returns(shaped, done, cfg.gamma)                      # [T, B, n]

        # A step's return is exact only if its episode ended inside the rollout. With the default
        # rollout length (whole episodes) that is every step; if trainer.rollout_steps cuts episodes,
        # the unfinished tails are left out (or, when no episode ended at all, everything is used).
        complete = np.flip(np.logical_or.accumulate(np.flip(done, 0), axis=0), 0)  # [T, B]
        if not complete.any():
            complete = np.ones_like(done)
        weight = np.broadcast_to(complete[..., None], returns.shape).astype(np.float64)
        adv = returns
        if cfg.normalize_returns:
            count = weight.sum(axis=(0, 1))                                        # per agent
            mean = (returns * weight).sum(axis=(0, 1)) / count
            std = np.sqrt((((returns - mean) ** 2) * weight).sum(axis=(0, 1)) / count)
            adv = (returns - mean) / (std + 1e-8)

        dist = masked_categorical(self.policy(torch.as_tensor(rollout.obs, dtype=torch.float32, device=self.device)),
                                  self.action_mask)
        logp = dist.log_prob(torch.as_tensor(rollout.actions, dtype=torch.long, device=self.device))   # [T, B, n]
        w = torch.as_tensor(weight, dtype=torch.float32, device=self.device)
        a = torch.as_tensor(adv, dtype=torch.float32, device=self.device)
        total = w.sum().clamp(min=1.0)
        loss_policy = -(logp * a * w).sum() / total
        entropy = (dist.entropy() * w).sum() / total
        loss = loss_policy - cfg.entropy_coef * entropy
        self.optim.zero_grad()
        loss.backward()
        if cfg.max_grad_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm))
        else:
            grad_norm = float(torch.sqrt(sum((p.grad ** 2).sum() for p in self.policy.parameters())))
        self.optim.step()

        metrics = {"train/loss_policy": loss_policy.item(), "train/entropy": entropy.item(),
                   "train/grad_norm": grad_norm}
        if self.lagrange is not None:
            episodes = int(done.sum())
            if episodes:   # mean episode cost per agent and constraint; assumes whole episodes (the default)
                self.lagrange.update(rollout.cost[..., : self.m_costs].sum(axis=(0, 1)) / episodes)
            lam, mask = self.lagrange.value, spec.cost_mask()
            for j, name in enumerate(spec.cost_names):
                metrics[f"train/lagrange/{name}"] = float(lam[mask[:, j], j].mean())
        return metrics

    # -- checkpoints: tensors and plain values only (loaded with torch.load(weights_only=True)) ---
    def state_dict(self) -> dict[str, Any]:
        state = {"policy": self.policy.state_dict(), "optim": self.optim.state_dict(), "rng": self.gen.get_state()}
        if self.lagrange is not None:
            state["lagrange"] = self.lagrange.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optim.load_state_dict(state["optim"])
        self.gen.set_state(state["rng"])
        if self.lagrange is not None and "lagrange" in state:
            self.lagrange.load_state_dict(state["lagrange"])

    def communication(self) -> dict[str, float]:
        """Independent learners exchange nothing: both volumes are zero (logged as ``comm/*``)."""
        return {"floats_per_step": 0.0, "floats_per_update": 0.0}
