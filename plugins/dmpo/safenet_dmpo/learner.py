"""Decentralized PPO with extended value functions: the learner shared by ``dppo``, ``cppo`` and ``dmpo``.

Read beside the DMPO paper (Nature MI 2024, "Model-based decentralized policy optimization"):

* agent ``i``'s policy ``π_i(a_i | s_{N_i})`` reads the states of its ``policy_kappa``-hop
  neighbourhood (gathered through the graph's index, so nothing outside ``N_i`` is read);
* its extended value function ``V_i(s_{N_i^κ})`` (Eq. 1) is fitted to the bootstrapped
  reward-to-go of its own reward (Eqs. 2–3; GAE(λ) returns, equal to Eq. 2 at λ = 1);
* its advantage is the κ-hop neighbourhood average (Eq. 4): we average the neighbours' rewards and
  values alike, which is the mean of their GAE advantages;
* the policy loss is PPO-clip with an entropy bonus (Eq. 5).

``cppo`` is the same learner whose critic reads the global state and whose agents use their own
advantage. With ``algo.lagrange.enabled=true`` every agent also learns cost critics and keeps
per-constraint Lagrange multipliers (core :mod:`safenet.lagrange`); its advantage becomes
``(A_r − Σ_j λ_ij A_cj) / (1 + Σ_j λ_ij)``.

All ``n`` agents' networks run as one batched op (:class:`safenet.nets.AgentMLP`); they share no
parameters, unless ``algo.share_parameters=true``: then one policy, one critic (and, for ``dmpo``, one
model) serve all agents, each on its own κ-hop inputs.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from torch import nn

from safenet.algorithm import Algorithm
from safenet.game import GameSpec
from safenet.lagrange import LagrangeMultipliers
from safenet.nets import BLOCK_FLOATS, AgentMLP, agent_blocks, blocked_grad_, load_optimizer_state
from safenet.ppo import AgentPolicy, RunningMeanStd, clipped_surrogate, gather_neighbourhood, minibatches, value_loss
from safenet.rollout import Rollout, gae

from .config import DPPOConfig


def neighbourhood_average(within: np.ndarray) -> np.ndarray:
    """Row-normalised ``[n, n]`` weights: ``W[i, j] = 1/|N_i^κ|`` for ``j ∈ N_i^κ`` (Eq. 4): the dense form of
    :meth:`DecentralizedPPO.mix`, which averages through the ``[n, K]`` neighbourhood index instead."""
    w = within.astype(np.float64)
    return w / w.sum(axis=1, keepdims=True)


class DecentralizedPPO(Algorithm):
    """``dppo``: decentralized PPO, κ-hop extended value functions, neighbourhood-averaged advantages."""

    rollout_steps = 150
    centralized_critic = False

    def __init__(self, spec: GameSpec, cfg: DPPOConfig, *, seed: int = 0, device: str = "cpu") -> None:
        super().__init__(spec, cfg, seed=seed, device=device)
        n, o = spec.n, spec.obs_dim
        graph = spec.graph
        self.n, self.o = n, o
        self.m = spec.max_costs
        self.rng = np.random.default_rng(seed)
        # κ-hop neighbourhoods as [n, K] index rows (a κ beyond the diameter gives each component whole)
        self.pi_idx, self.pi_mask = graph.neighbourhood_index(cfg.policy_kappa)
        self.v_idx, self.v_mask = graph.neighbourhood_index(cfg.kappa)
        # Eq. 4: the agents whose advantages agent i averages (itself only for "own" advantages)
        if cfg.advantage == "neighbourhood":
            self.adv_idx, self.adv_mask = self.v_idx, self.v_mask
        else:
            self.adv_idx, self.adv_mask = np.arange(n)[:, None], np.ones((n, 1), dtype=bool)
        self._adv_w = self.adv_mask / self.adv_mask.sum(1, keepdims=True)          # [n, K]: 1/|N_i^κ| on real slots
        self.use_lagrange = bool(self.m and cfg.lagrange.enabled)
        self.n_values = 1 + (self.m if self.use_lagrange else 0)
        # networks, their optimizer state and every update live on ``device``; numpy arrays (rollouts,
        # normalisers, Lagrange multipliers) stay on the host and cross once per batch
        shared = bool(cfg.share_parameters)
        self.policy = AgentPolicy(n, self.pi_idx.shape[1] * o, spec.action_kind, spec.action_dims, cfg.hidden,
                                  shared=shared).to(device)
        self.critic = AgentMLP(n, self.critic_features(), cfg.hidden, self.n_values, shared=shared).to(device)
        self.pi_opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr_policy, eps=1e-5)
        self.v_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_value, eps=1e-5)
        self.obs_rms = RunningMeanStd((n, o))
        # value normalisation: critics predict targets standardised by running statistics (per agent
        # and value head); values() returns them in the game's (scaled) units
        self.ret_rms = RunningMeanStd((n, self.n_values))
        self.state_rms = RunningMeanStd((spec.state_dim,)) if self.centralized_critic and spec.state_dim else None
        self.lagrange = (LagrangeMultipliers.from_config(spec.cost_limit_array(), spec.cost_mask(), cfg.lagrange)
                         if self.use_lagrange else None)
        self._ep_cost: np.ndarray | None = None     # running per-copy episode cost [B, n, m]
        self._samples_last_update = 0.0             # learning samples (rows of n agents) of the last update
        self.iteration = 0
        if spec.action_kind == "continuous":
            self._low = np.broadcast_to(np.asarray(spec.action_low, dtype=np.float64), (n, spec.action_dim))
            self._high = np.broadcast_to(np.asarray(spec.action_high, dtype=np.float64), (n, spec.action_dim))

    # -- inputs ---------------------------------------------------------------------------------
    def critic_features(self) -> int:
        if self.centralized_critic:
            return self.spec.state_dim or self.n * self.o
        return self.v_idx.shape[1] * self.o

    def tensor(self, x: Any, dtype: torch.dtype | None = torch.float32) -> torch.Tensor:
        """``x`` as a tensor on the algorithm's device (``dtype=None`` keeps the array's type)."""
        return torch.as_tensor(x, dtype=dtype, device=self.device)

    def norm_obs(self, obs: np.ndarray) -> torch.Tensor:
        x = self.obs_rms.normalize(obs) if self.cfg.normalize_obs else obs
        return self.tensor(x)

    def policy_input(self, obs_n: torch.Tensor) -> torch.Tensor:
        return gather_neighbourhood(obs_n, self.pi_idx, self.pi_mask)

    def critic_input(self, obs_n: torch.Tensor, state: np.ndarray | None = None) -> torch.Tensor:
        """Agent ``i``'s critic input: ``s_{N_i^κ}`` (decentralized) or the global state (``cppo``)."""
        if not self.centralized_critic:
            return gather_neighbourhood(obs_n, self.v_idx, self.v_mask)
        if self.state_rms is not None and state is not None:
            s = self.tensor(self.state_rms.normalize(state) if self.cfg.normalize_obs else state)
        else:
            s = obs_n.reshape(*obs_n.shape[:-2], -1)
        return s.unsqueeze(-2).expand(*s.shape[:-1], self.n, s.shape[-1])

    def scale_reward(self, reward: np.ndarray) -> np.ndarray:
        r = reward * self.cfg.reward_scale
        return np.clip(r, -self.cfg.reward_clip, self.cfg.reward_clip) if self.cfg.reward_clip > 0 else r

    # -- acting ---------------------------------------------------------------------------------
    def sample(self, obs_n: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions and their log-probabilities for normalised observations ``[..., n, o]``."""
        dist = self.policy.distribution(self.policy_input(obs_n))
        a = self.policy.mode(dist) if deterministic else self.policy.sample(dist)
        return a, self.policy.log_prob(dist, a)

    def env_actions(self, a: torch.Tensor) -> np.ndarray:
        a = a.cpu().numpy()
        if self.spec.action_kind == "discrete":
            return a.astype(np.int64)
        return np.clip(a.astype(np.float64), self._low, self._high)

    @torch.no_grad()
    def act(self, obs: np.ndarray, info: dict, deterministic: bool = False) -> tuple[np.ndarray, dict]:
        a, logp = self.sample(self.norm_obs(obs), deterministic)
        extras = {"logp": logp.cpu().numpy()}
        if self.spec.action_kind == "continuous":
            extras["raw_action"] = a.cpu().numpy()
        return self.env_actions(a), extras

    # -- learning -------------------------------------------------------------------------------
    def mix(self, adv: np.ndarray) -> np.ndarray:
        """Eq. 4: agent ``i``'s advantage is the mean over ``j ∈ N_i^κ`` (``adv[..., n]`` or ``[..., n, m]``),
        gathered through the ``[n, K]`` index (work and memory ``n·K``, never ``n²``)."""
        if adv.ndim and adv.shape[-1] != self.n:
            return np.einsum("...ikm,ik->...im", adv[..., self.adv_idx, :], self._adv_w)
        return np.einsum("...ik,ik->...i", adv[..., self.adv_idx], self._adv_w)

    def advantages(self, reward: np.ndarray, cost: np.ndarray | None, value: np.ndarray, next_value: np.ndarray,
                   terminated: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-agent GAE of the reward (and costs), mixed over neighbourhoods and combined with λ.

        ``value``/``next_value``: ``[T, N, n, 1 + m]``. Returns the policy advantage ``[T, N, n]``
        and the critic targets ``[T, N, n, 1 + m]`` (each agent's own bootstrapped returns, Eq. 2).
        """
        cfg = self.cfg
        adv_r, ret_r = gae(reward, value[..., 0], next_value[..., 0], terminated, done, cfg.gamma, cfg.gae_lambda)
        adv = self.mix(adv_r)
        targets = [ret_r]
        if self.use_lagrange:
            lam = self.lagrange.value                                        # [n, m]
            adv_c = np.zeros_like(adv)
            for j in range(self.m):
                a_c, r_c = gae(cost[..., j], value[..., 1 + j], next_value[..., 1 + j], terminated, done,
                               cfg.gamma, cfg.gae_lambda)
                adv_c += lam[:, j] * self.mix(a_c)
                targets.append(r_c)
            adv = (adv - adv_c) / (1.0 + lam.sum(axis=1))
        return adv, np.stack(targets, axis=-1)

    #: floats one no-grad activation may hold before the critic's full-batch pass goes in chunks of samples
    chunk_floats: int = 2 ** 24

    @torch.no_grad()
    def values(self, critic_in: torch.Tensor) -> np.ndarray:
        """Values ``[..., n, 1 + m]`` of critic inputs ``[..., n, F]``; in chunks of samples when
        ``n × samples × width`` passes ``chunk_floats`` (memory linear in n at large n)."""
        flat = critic_in.reshape(-1, *critic_in.shape[-2:])
        width = max(max(self.cfg.hidden), critic_in.shape[-1])
        per = max(1, self.chunk_floats // max(1, self.n * width))
        v = torch.cat([self.critic(flat[a:a + per]) for a in range(0, flat.shape[0], per)])
        v = v.reshape(*critic_in.shape[:-1], -1).cpu().numpy().astype(np.float64)
        return v * np.sqrt(self.ret_rms.var + 1e-8) + self.ret_rms.mean if self.cfg.normalize_value else v

    def ppo_update(self, pi_in: torch.Tensor, critic_in: torch.Tensor, actions: torch.Tensor, logp_old: torch.Tensor,
                   adv: np.ndarray, targets: np.ndarray, weight: np.ndarray | None = None) -> dict[str, float]:
        """PPO-clip epochs (Eq. 5) and critic regression (Eq. 3) on flattened samples ``[S, n, ...]``.

        ``weight[S, n]`` (0/1) drops samples from the losses (model steps after a predicted end).
        """
        cfg = self.cfg
        S = pi_in.shape[0]
        self._samples_last_update += float(S)
        w = torch.ones(S, self.n, device=self.device) if weight is None else self.tensor(weight)
        adv_t = self.tensor(adv)
        if cfg.normalize_advantage:
            # one mean/std over all agents' samples: a per-agent scale would blow an agent's near-zero
            # advantages (nothing to improve) up to unit noise
            cnt = w.sum().clamp_min(1.0)
            mean = (adv_t * w).sum() / cnt
            std = (((adv_t - mean) ** 2 * w).sum() / cnt).sqrt()
            adv_t = (adv_t - mean) / (std + 1e-8)
        if cfg.normalize_value:
            self.ret_rms.update(targets if weight is None else targets[np.asarray(weight).all(axis=-1)])
            targets = self.ret_rms.normalize(targets, clip=None)
        tgt = self.tensor(targets)
        policy_on, stats = True, {"kl": 0.0, "clipfrac": 0.0, "entropy": 0.0, "policy_loss": 0.0, "value_loss": 0.0}
        epochs_run = 0
        mb_size = -(-S // cfg.minibatches)
        v_blocks = self.agent_blocks(mb_size, max(critic_in.shape[-1], *cfg.hidden))
        pi_blocks = self.agent_blocks(mb_size, max(pi_in.shape[-1], *cfg.hidden))
        for _ in range(cfg.epochs):
            kls = []
            for mb in minibatches(S, cfg.minibatches, self.rng):
                mb_t = self.tensor(mb, dtype=torch.long)
                wm = w[mb_t]
                denom = wm.sum(0).clamp_min(1.0)                        # per-agent sample count
                stats["value_loss"] = self.critic_step(critic_in, mb_t, tgt[mb_t], wm, denom, v_blocks)
                if not policy_on:
                    continue
                step = self.policy_step(pi_in, actions, logp_old[mb_t], adv_t[mb_t], mb_t, wm, denom, pi_blocks)
                kls.append(step.pop("kl"))
                stats.update(step)
            if policy_on:
                epochs_run += 1
                stats["kl"] = float(np.mean(kls)) if kls else 0.0
                if cfg.target_kl > 0 and stats["kl"] > cfg.target_kl:
                    policy_on = False
        stats["policy_epochs"] = float(epochs_run)
        return stats

    #: floats one activation of a block of agents may hold in a minibatch step (see :func:`agent_blocks`)
    block_floats: int = BLOCK_FLOATS

    def agent_blocks(self, samples: int, width: int) -> list[slice] | None:
        """Blocks of agents for the minibatch steps, or None: one full-width pass (small ``n``, shared networks)."""
        if self.cfg.share_parameters:
            return None
        blocks = agent_blocks(self.n, samples, width, self.block_floats)
        return blocks if len(blocks) > 1 else None

    def critic_step(self, critic_in: torch.Tensor, mb_t: torch.Tensor, tgt: torch.Tensor, wm: torch.Tensor,
                    denom: torch.Tensor, blocks: list[slice] | None) -> float:
        """One Adam step of every critic on minibatch ``mb_t`` (Eq. 3); returns the mean per-agent loss.
        With ``blocks`` the gradient is computed block of agents by block (the same gradient)."""
        cfg = self.cfg
        if blocks is None:
            v = self.critic(critic_in[mb_t])
            vl = (value_loss(v, tgt).sum(-1) * wm).sum(0) / denom
            self.v_opt.zero_grad()
            vl.sum().backward()
            total = vl.detach().sum()
        else:
            parts = []

            def block_loss(rows: slice, leaves: list[torch.Tensor]) -> torch.Tensor:
                v = self.critic(critic_in[:, rows].index_select(0, mb_t), leaves)
                vl = ((value_loss(v, tgt[:, rows]).sum(-1) * wm[:, rows]).sum(0) / denom[rows]).sum()
                parts.append(vl.detach())
                return vl

            blocked_grad_(list(self.critic.parameters()), blocks, block_loss)
            total = torch.stack(parts).sum()
        nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
        self.v_opt.step()
        return float(total) / self.n

    def policy_step(self, pi_in: torch.Tensor, actions: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor,
                    mb_t: torch.Tensor, wm: torch.Tensor, denom: torch.Tensor,
                    blocks: list[slice] | None) -> dict[str, float]:
        """One Adam step of every policy on minibatch ``mb_t`` (Eq. 5; ``logp_old``, ``adv``, ``wm`` are the
        minibatch's rows); returns its KL, clip fraction, entropy and loss. With ``blocks`` the gradient is
        computed block of agents by block (the same gradient)."""
        cfg = self.cfg
        sums: list[torch.Tensor] = []

        def block_loss(rows: slice | None, leaves: list[torch.Tensor] | None) -> torch.Tensor:
            every = rows is None
            sel = slice(None) if every else rows
            x = pi_in[mb_t] if every else pi_in[:, rows].index_select(0, mb_t)
            a = actions[mb_t] if every else actions[:, rows].index_select(0, mb_t)
            dist = self.policy.distribution(x, leaves, rows)
            logp = self.policy.log_prob(dist, a, rows)
            surr = clipped_surrogate(logp, logp_old[:, sel], adv[:, sel], cfg.clip)
            ent = self.policy.entropy(dist, rows)
            w = wm[:, sel]
            loss = -((surr + cfg.entropy_coef * ent) * w).sum(0) / denom[sel]
            with torch.no_grad():
                log_ratio = logp - logp_old[:, sel]
                sums.append(torch.stack([((log_ratio.exp() - 1.0 - log_ratio) * w).sum(),
                                         (((log_ratio.exp() - 1).abs() > cfg.clip).float() * w).sum(),
                                         (ent * w).sum(), loss.detach().sum()]))
            return loss.sum()

        if blocks is None:
            self.pi_opt.zero_grad()
            block_loss(None, None).backward()
        else:
            blocked_grad_(self.policy.row_params(), blocks, block_loss)
        nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
        self.pi_opt.step()
        kl, clipped, ent, loss = torch.stack(sums).sum(0)            # sums over agents and samples
        count = wm.sum().clamp_min(1.0)
        return {"kl": float(kl / count), "clipfrac": float(clipped / count), "entropy": float(ent / count),
                "policy_loss": float(loss) / self.n}

    def real_batch(self, rollout: Rollout) -> dict[str, Any]:
        """Flattened tensors, advantages and critic targets of a real rollout."""
        T, B = rollout.reward.shape[:2]
        obs_n, next_n = self.norm_obs(rollout.obs), self.norm_obs(rollout.next_obs)
        state = rollout.infos.get("state") if self.centralized_critic else None
        next_state = rollout.infos.get("next_state") if self.centralized_critic else None
        c_in, c_next = self.critic_input(obs_n, state), self.critic_input(next_n, next_state)
        value, next_value = self.values(c_in), self.values(c_next)
        cost = rollout.cost[..., : self.m] if self.use_lagrange else None
        adv, targets = self.advantages(self.scale_reward(rollout.reward), cost, value, next_value,
                                       rollout.terminated, rollout.done)
        actions = rollout.extras.get("raw_action", rollout.actions)
        flat = lambda x: x.reshape(T * B, *x.shape[2:])  # noqa: E731
        return {"pi_in": flat(self.policy_input(obs_n)), "critic_in": flat(c_in),
                "actions": self.tensor(flat(actions), None), "logp_old": self.tensor(flat(rollout.extras["logp"]), None),
                "adv": flat(adv), "targets": flat(targets)}

    def update(self, rollout: Rollout) -> dict[str, float]:
        self.iteration += 1
        self._samples_last_update = 0.0
        batch = self.real_batch(rollout)
        stats = self.ppo_update(**batch)
        metrics = {f"train/{k}": v for k, v in stats.items()}
        metrics.update(self.after_update(rollout))
        return metrics

    def after_update(self, rollout: Rollout) -> dict[str, float]:
        """Lagrange multipliers from finished episodes' costs; normaliser statistics."""
        metrics: dict[str, float] = {}
        if self.lagrange is not None:
            ep_cost = self._finished_episode_costs(rollout)
            if ep_cost is not None:
                self.lagrange.update(ep_cost)
            for j, name in enumerate(self.spec.cost_names):
                metrics[f"train/lagrange/{name}"] = float(self.lagrange.value[self.spec.cost_mask()[:, j], j].mean())
        if self.cfg.normalize_obs:
            self.obs_rms.update(rollout.obs)
            if self.state_rms is not None and "state" in rollout.infos:
                self.state_rms.update(rollout.infos["state"])
        return metrics

    def _finished_episode_costs(self, rollout: Rollout) -> np.ndarray | None:
        """Mean per-episode cost ``[n, m]`` of the episodes that ended in this rollout."""
        cost, done = rollout.cost[..., : self.m], rollout.done
        if self._ep_cost is None or self._ep_cost.shape != cost.shape[1:]:
            self._ep_cost = np.zeros(cost.shape[1:])
        finished = []
        for t in range(cost.shape[0]):
            self._ep_cost += cost[t]
            for b in np.flatnonzero(done[t]):
                finished.append(self._ep_cost[b].copy())
                self._ep_cost[b] = 0.0
        return np.mean(finished, axis=0) if finished else None

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"policy": self.policy.state_dict(), "critic": self.critic.state_dict(),
                 "pi_opt": self.pi_opt.state_dict(), "v_opt": self.v_opt.state_dict(),
                 "obs_rms": self.obs_rms.state_dict(), "ret_rms": self.ret_rms.state_dict(), "iteration": self.iteration,
                 "rng": json.dumps(self.rng.bit_generator.state)}
        if self.state_rms is not None:
            state["state_rms"] = self.state_rms.state_dict()
        if self.lagrange is not None:
            state["lagrange"] = self.lagrange.state_dict()
        if self._ep_cost is not None:
            state["ep_cost"] = torch.as_tensor(self._ep_cost)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        load_optimizer_state(self.pi_opt, state["pi_opt"])
        load_optimizer_state(self.v_opt, state["v_opt"])
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.ret_rms.load_state_dict(state["ret_rms"])
        self.iteration = int(state["iteration"])
        self.rng.bit_generator.state = json.loads(state["rng"])
        if self.state_rms is not None and "state_rms" in state:
            self.state_rms.load_state_dict(state["state_rms"])
        if self.lagrange is not None and "lagrange" in state:
            self.lagrange.load_state_dict(state["lagrange"])
        if "ep_cost" in state:
            self._ep_cost = state["ep_cost"].numpy().copy()

    # -- communication --------------------------------------------------------------------------
    def neighbour_links(self, mask: np.ndarray) -> float:
        """Σ_i (|N_i| − 1): how many other agents' messages the agents read in total."""
        return float((mask.sum(axis=1) - 1).sum())

    def communication(self) -> dict[str, float]:
        """Floats exchanged: neighbours' states for acting (every step); for learning, the critics'
        κ-hop states (or the global state for ``cppo``) and the neighbours' advantages (Eq. 4)."""
        o, n = self.o, self.n
        per_step = self.neighbour_links(self.pi_mask) * o
        if self.centralized_critic:
            per_sample = n * (self.spec.state_dim or n * o)
        else:
            per_sample = self.neighbour_links(self.v_mask) * o
        if self.cfg.advantage == "neighbourhood":
            per_sample += float(self.adv_mask.sum() - n) * self.n_values
        return {"floats_per_step": per_step, "floats_per_update": per_sample * self._samples_last_update
                + self.extra_floats_last_update()}

    def extra_floats_last_update(self) -> float:
        return 0.0


class CentralizedPPO(DecentralizedPPO):
    """``cppo``: the critic of every agent reads the global state; own advantages (``CPPOConfig``)."""

    centralized_critic = True
