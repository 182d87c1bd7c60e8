"""Scalable Actor Critic (SAC) — Qu, Wierman & Li, "Scalable Reinforcement Learning of Localized
Policies for Multi-Agent Networked Systems" (L4DC 2020), Algorithm 1.

Each agent ``i`` keeps a localized tabular softmax policy ``ζ_i(a_i | s_i)`` (parameters
``θ_i[s_i, a_i]``) and a truncated Q-function ``Q̂_i(s_{N_i^κ}, a_{N_i^κ})`` over its κ-hop
neighbourhood. One outer iteration ``m``:

1. run the current policies for an episode (here: ``B`` episodes, one per game copy);
2. critic: TD(0) on the truncated Q-functions, pretending the neighbourhood pair is the state
   (Algorithm 1, lines 6-8), with step size ``α_t = h / (t + t0)``;
3. actor: the truncated policy gradient (Eq. 7 / line 11)
   ``ĝ_i = Σ_t γ^t (1/n) Σ_{j∈N_i^κ} Q̂_j(s_{N_j^κ}(t), a_{N_j^κ}(t)) ∇_{θ_i} log ζ_i(a_i(t) | s_i(t))``
   and the step ``θ_i ← θ_i + η_m ĝ_i`` with ``η_m = η / sqrt(m + 1)`` (line 12).

Safety (our addition): each agent also learns truncated cost Q-functions ``Q̂^c_j`` from the same
samples and ascends the Lagrangian ``(1/n) Σ_j (J_r^j − λ_j (J_c^j − c_j))``: ``Q̂_j`` in line 11 is
replaced by ``Q̂_j − λ_j · Q̂^c_j``; ``λ_j`` rises while agent ``j``'s episode cost exceeds its limit
(projected gradient ascent, :mod:`safenet.lagrange`).
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import torch

from safenet.algorithm import Algorithm
from safenet.errors import ConfigError, IncompatibleError
from safenet.game import GameSpec
from safenet.lagrange import LagrangeMultipliers
from safenet.rollout import Rollout

from .config import SACConfig
from .tables import NeighbourhoodHasher, SparseTable


class ScalableActorCritic(Algorithm):
    needs_whole_episodes = True          # Algorithm 1 learns from whole episodes (inner loop of length T)
    def __init__(self, spec: GameSpec, cfg: SACConfig, *, seed: int = 0, device: str = "cpu") -> None:
        super().__init__(spec, cfg, seed=seed, device=device)
        if str(device) != "cpu":        # tables and policies are numpy arrays: nothing to put on an accelerator
            raise ConfigError(f"trainer.device={str(device)!r}: algorithm 'sac' runs on cpu only; set trainer.device=cpu")
        if spec.n_local_states is None or spec.action_kind != "discrete":
            raise IncompatibleError("sac needs finite local states and discrete actions (env tag 'finite')")
        self.rollout_steps = spec.episode_length          # one episode per copy per iteration
        n, S, A = spec.n, max(spec.n_local_states), spec.action_dim
        self.rng = np.random.default_rng(seed)
        # localized policies ζ_i(·|s_i) = softmax(θ_i[s_i]); invalid (padded) actions masked out
        self.theta = np.zeros((n, S, A))
        self.valid = np.broadcast_to(spec.action_mask()[:, None, :], (n, S, A))
        # truncated Q-functions: column 0 the reward, columns 1.. the costs
        self.idx, self.mask = spec.graph.neighbourhood_index(cfg.kappa)
        self.hasher = NeighbourhoodHasher(self.idx, self.mask, A)           # fixed hash: tables survive any resume
        self.m_costs = spec.max_costs
        self.q = SparseTable(1 + self.m_costs)
        self.lagrange = (LagrangeMultipliers.from_config(spec.cost_limit_array(), spec.cost_mask(), cfg.lagrange)
                         if self.m_costs and cfg.lagrange.enabled else None)
        self.iteration = 0
        self._agents = np.arange(n)
        self.state_baseline = np.zeros((n, S))                               # for baseline="state"
        self._episodes_per_update = 1

    # -- acting ---------------------------------------------------------------------------------
    def probs(self, local_state: np.ndarray) -> np.ndarray:
        """``ζ_i(·|s_i)`` for ``local_state[B, n]`` → ``[B, n, A]``."""
        logits = self.theta[self._agents, local_state]                     # [B, n, A]
        valid = self.valid[self._agents, local_state]
        logits = np.where(valid, logits, -np.inf)
        logits = logits - logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=-1, keepdims=True)

    def act(self, obs: np.ndarray, info: dict, deterministic: bool = False) -> tuple[np.ndarray, dict]:
        s = info["local_state"]
        p = self.probs(s)
        if deterministic:
            return p.argmax(axis=-1), {}
        u = self.rng.random(p.shape[:-1] + (1,))
        actions = (p.cumsum(axis=-1) < u).sum(axis=-1)                    # inverse-CDF sampling
        return np.minimum(actions, np.asarray(self.spec.action_dims) - 1), {}

    # -- learning -------------------------------------------------------------------------------
    def update(self, rollout: Rollout) -> dict[str, float]:
        cfg, spec = self.cfg, self.spec
        s, a = rollout.infos["local_state"], rollout.actions                # [T, B, n]
        T, B, n = s.shape
        done = rollout.done                                                  # [T, B]
        target = np.concatenate([rollout.reward[..., None], rollout.cost[..., : self.m_costs]], axis=-1)  # [T,B,n,1+m]
        if not cfg.warm_start:
            self.q.clear()
        rows = self.q.rows(self.hasher.keys(s, a))                           # [T, B, n]
        Q = self.q.values

        # critic: TD(0) on truncated Q (Algorithm 1, lines 6-8); copies that hit the same entry at
        # the same t share one averaged update
        t_in_ep = self._steps_in_episode(done)
        for t in range(T):
            if cfg.critic_schedule == "inner":
                alpha = np.broadcast_to((cfg.critic_h / (t_in_ep[t] + cfg.critic_t0))[:, None], (B, n))
            else:
                alpha = np.maximum(cfg.critic_h / (self.q.visits[rows[t]] + cfg.critic_t0), cfg.critic_min_step)
            boot = np.zeros_like(target[t])
            if t + 1 < T:
                boot = Q[rows[t + 1]]
            live = ~done[t]                                                  # bootstrap within the episode
            last_term = rollout.terminated[t]
            # a truncated last step has no next pair (line 7 stops at T): no update; neither has a
            # step whose episode goes on past the end of the rollout
            upd = (live | last_term) if t + 1 < T else last_term
            td = target[t] + cfg.gamma * boot * live[:, None, None] - Q[rows[t]]      # [B, n, 1+m]
            w = (np.where(upd[:, None], alpha, 0.0)[..., None] * td).reshape(B * n, -1)
            # average the updates of copies that hit the same entry at this step
            touched, inv = np.unique(rows[t].ravel(), return_inverse=True)
            cnt = np.bincount(inv, weights=np.repeat(upd, n).astype(float), minlength=len(touched))
            acc = np.stack([np.bincount(inv, weights=w[:, c], minlength=len(touched)) for c in range(w.shape[1])], -1)
            hit = cnt > 0
            Q[touched[hit]] += acc[hit] / cnt[hit, None]
            self.q.visits[touched[hit]] += 1

        # Lagrange multipliers from this iteration's episode costs (per agent, per constraint)
        lam = np.zeros((n, self.m_costs))
        metrics: dict[str, float] = {}
        if self.lagrange is not None:
            ep_cost = self._episode_costs(rollout)
            if ep_cost is not None:
                self.lagrange.update(ep_cost)
            lam = self.lagrange.value
            for j, name in enumerate(spec.cost_names):
                metrics[f"train/lagrange/{name}"] = float(lam[spec.cost_mask()[:, j], j].mean())

        # actor: truncated policy gradient (Eq. 7; Algorithm 1, line 11)
        qv = Q[rows]                                                         # [T, B, n, 1+m]
        lagr = qv[..., 0] - (qv[..., 1:] * lam[None, None]).sum(-1)         # Q̂_j − λ_j Q̂^c_j
        # Σ_{j∈N_i^κ} of neighbours' values, one gather for all agents
        neigh_sum = (lagr[..., self.idx] * self.mask).sum(-1) / n            # [T, B, n]
        disc = cfg.gamma ** t_in_ep                                          # γ^t with t from episode start
        if cfg.baseline == "batch" and B > 1:                                # leave-one-out mean of other copies
            neigh_sum = neigh_sum - (neigh_sum.sum(axis=1, keepdims=True) - neigh_sum) / (B - 1)
        elif cfg.baseline == "state":                                        # local value of s_i (before this batch)
            agent_ix0 = np.broadcast_to(self._agents, s.shape)
            base = self.state_baseline[agent_ix0, s]
            target_sum = np.zeros_like(self.state_baseline)
            count = np.zeros_like(self.state_baseline)
            np.add.at(target_sum, (agent_ix0.ravel(), s.ravel()), neigh_sum.ravel())
            np.add.at(count, (agent_ix0.ravel(), s.ravel()), 1.0)
            seen = count > 0
            self.state_baseline[seen] += cfg.baseline_rate * (target_sum[seen] / count[seen] - self.state_baseline[seen])
            neigh_sum = neigh_sum - base
        weight = disc[..., None] * neigh_sum                                 # [T, B, n]
        p = self.probs(s.reshape(-1, n)).reshape(T, B, n, -1)
        grad_logp = -p
        np.put_along_axis(grad_logp, a[..., None], np.take_along_axis(grad_logp, a[..., None], -1) + 1.0, -1)
        contrib = weight[..., None] * grad_logp                              # [T, B, n, A]
        grad = np.zeros_like(self.theta)
        agent_ix = np.broadcast_to(self._agents, (T, B, n))
        np.add.at(grad, (agent_ix.ravel(), s.ravel()), contrib.reshape(-1, contrib.shape[-1]))
        episodes = max(1, int(done.sum())) if done.any() else B
        self._episodes_per_update = B
        grad /= episodes                                                      # average over the B episodes
        m = self.iteration % cfg.actor_decay_restart if cfg.actor_decay_restart else self.iteration
        eta = cfg.actor_lr / math.sqrt(m + 1) if cfg.actor_decay == "sqrt" else cfg.actor_lr
        self.theta += eta * np.where(self.valid, grad, 0.0)
        self.iteration += 1

        ent = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(-1).mean()
        metrics.update({"train/q_entries": float(len(self.q)), "train/actor_lr": eta,
                        "train/grad_norm": float(np.linalg.norm(grad)), "train/policy_entropy": float(ent),
                        "train/q_mean": float(qv[..., 0].mean())})
        return metrics

    @staticmethod
    def _steps_in_episode(done: np.ndarray) -> np.ndarray:
        """``t`` counted from each copy's episode start (resets after a done)."""
        T, B = done.shape
        out = np.zeros((T, B))
        cur = np.zeros(B)
        for t in range(T):
            out[t] = cur
            cur = np.where(done[t], 0.0, cur + 1.0)
        return out

    def _episode_costs(self, rollout: Rollout) -> np.ndarray | None:
        """Mean per-episode cost ``[n, m]`` of the episodes in the rollout (None if none ended)."""
        done = rollout.done
        if not done.any():
            return None
        episodes = done.sum()
        # the rollout holds whole episodes when it is one episode per copy (our case)
        return rollout.cost[..., : self.m_costs].sum(axis=(0, 1)) / episodes

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"theta": torch.from_numpy(self.theta.copy()), "q": self.q.state_dict(),
                 "state_baseline": torch.from_numpy(self.state_baseline.copy()),
                 "iteration": self.iteration, "rng": json.dumps(self.rng.bit_generator.state)}
        if self.lagrange is not None:
            state["lagrange"] = self.lagrange.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.theta = state["theta"].numpy().copy()
        if "state_baseline" in state:
            self.state_baseline = state["state_baseline"].numpy().copy()
        self.q.load_state_dict(state["q"])
        self.iteration = int(state["iteration"])
        self.rng.bit_generator.state = json.loads(state["rng"])
        if self.lagrange is not None and "lagrange" in state:
            self.lagrange.load_state_dict(state["lagrange"])

    def communication(self) -> dict[str, float]:
        """Floats exchanged: neighbours' (s_j, a_j) for each critic step; Q̂_j (reward and costs) for the actor."""
        nbrs = float((self.mask.sum(axis=1) - 1).sum())
        return {"floats_per_step": 2.0 * nbrs,
                "floats_per_update": nbrs * (1 + self.m_costs) * self.rollout_steps * self._episodes_per_update}
