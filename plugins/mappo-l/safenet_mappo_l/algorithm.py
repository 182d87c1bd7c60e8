"""The PPO family on one code path: IPPO, MAPPO, HAPPO, MAPPO-L and DEC-MAPPO-L.

Seed paper: "Decentralized safe MARL" (DEC-MAPPO-L), §2.2 (Proposition 2.3: the sequential update
of MAPPO-L/HAPPO), §3.2 (Theorem 3.6: the κ-hop version), §3.3 (Eqs. 19-23, Algorithm 1).

One iteration (``update``):

1. **Lagrange multipliers** (constrained variants): ``λ_j^i ← max(0, λ_j^i + η_λ (Ĵ_j^i − c_j^i))``
   from the measured per-episode costs ``Ĵ`` of the episodes that ended in this rollout
   (:mod:`safenet.lagrange`; PID optional);
2. **advantages**: GAE on the reward ``r̃_i`` (team mean, κ-hop mean or own) with critic
   ``V^i(s_{N_i})`` and on each cost ``C_j^i`` with cost critic ``V_j^i(s_{N_i})``; ``N_i`` is all
   agents (MAPPO, HAPPO, MAPPO-L), ``N_i^κ`` (DEC-MAPPO-L) or ``{i}`` (IPPO). Combined advantage
   (Eq. 21): ``A^{i,(λ)} = (Â^i − Σ_j λ_j^i Â_j^i) / (1 + Σ_j λ_j^i)`` (the constant ``d`` shifts
   every sample alike and is left out; the division is optional);
3. **critics** (Eq. 23, with λ-returns as targets): all agents' critics in one batched step;
4. **policies** (Eq. 22): PPO-clip on ``M_i · A^{i,(λ)}``, stage by stage of the update plan
   (:func:`safenet.schedule.plan_updates`): a random order, agents whose κ-hop neighbourhoods cannot
   interact updated together, and ``M_i = Π_{j ∈ pred(i)} π̄^j(a^j)/π^j(a^j)`` over the
   already-updated agents inside ``N_i^κ`` (all earlier agents for HAPPO/MAPPO-L; none for
   IPPO/MAPPO, which update all agents at once).

All agents' networks are batched (:mod:`safenet.nets`); a stage evaluates only its own agents.
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from safenet.algorithm import Algorithm
from safenet.errors import ConfigError, IncompatibleError
from safenet.game import GameSpec
from safenet.graph import Graph
from safenet.lagrange import LagrangeMultipliers
from safenet.nets import AgentMLP
from safenet.onpolicy import (AgentAdam, EpisodeCostTracker, log_correction, neighbourhood_floats, neighbourhood_mean,
                              normalize_per_agent, subset_distribution, subset_entropy, subset_log_prob)
from safenet.ppo import AgentPolicy, RunningMeanStd, clipped_surrogate, gather_neighbourhood, minibatches, value_loss
from safenet.rollout import Rollout, gae
from safenet.schedule import UpdatePlan, plan_updates

from .config import DecSafePPOConfig, PPOConfig, SafePPOConfig

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def auto_rollout_steps(episode_length: int) -> int:
    """Whole episodes, at least 128 steps per copy; long episodes are cut at 1000 steps."""
    if episode_length >= 1000:
        return 1000
    return episode_length * max(1, math.ceil(128 / episode_length))


class PPOFamily(Algorithm):
    """The shared code path; subclasses only choose the scope, the update scheme and constraints."""

    #: whose observations each critic reads: "local" ({i}), "kappa" (N_i^κ) or "global" (all agents)
    scope: str = "global"
    #: sequential updates with the correction factor (HAPPO, MAPPO-L, DEC-MAPPO-L) or all at once
    sequential: bool = True
    #: cost critics and Lagrange multipliers
    constrained: bool = False

    def __init__(self, spec: GameSpec, cfg: PPOConfig, *, seed: int = 0, device: str = "cpu") -> None:
        super().__init__(spec, cfg, seed=seed, device=device)
        n, o = spec.n, spec.obs_dim
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(int(seed) % 2**63)
        self.rollout_steps = cfg.rollout_steps or auto_rollout_steps(spec.episode_length)
        # neighbourhoods: the critic's, the update plan's, the reward's and the policy's
        if self.scope == "kappa":
            self.plan_graph, self.kappa = spec.graph, int(cfg.kappa)
        elif self.scope == "global":
            self.plan_graph, self.kappa = Graph.complete(n), 1      # every agent within one hop
        else:
            self.plan_graph, self.kappa = spec.graph, 0
        self.nbr_idx, self.nbr_mask = self.plan_graph.neighbourhood_index(self.kappa)
        reward_graph = {"team": (Graph.complete(n), 1), "neighbourhood": (self.plan_graph, self.kappa),
                        "own": (spec.graph, 0)}[cfg.reward]
        self.rew_idx, self.rew_mask = reward_graph[0].neighbourhood_index(reward_graph[1])
        if cfg.policy_input == "neighbourhood":
            self.pol_idx, self.pol_mask = self.nbr_idx, self.nbr_mask
        else:
            self.pol_idx, self.pol_mask = np.arange(n)[:, None], np.ones((n, 1), dtype=bool)
        if cfg.critic_input == "state":
            if self.scope != "global":
                raise ConfigError(f"algo.critic_input='state' needs a centralized critic; this algorithm's critics "
                                  f"read {self.scope!r} neighbourhoods (valid: 'obs')")
            if not spec.state_dim:
                raise IncompatibleError(f"algo.critic_input='state' needs a game with a global state; "
                                        f"{spec.name!r} has none (valid: 'obs')")
        self.m = spec.max_costs if self.constrained else 0
        act = _ACTIVATIONS[cfg.activation]
        crit_in = spec.state_dim if cfg.critic_input == "state" else self.nbr_idx.shape[1] * o
        # parameters are drawn from a generator seeded by the algorithm's seed: same seed, same nets
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) % 2**63)
            self.policy = AgentPolicy(n, self.pol_idx.shape[1] * o, spec.action_kind, spec.action_dims,
                                      hidden=tuple(cfg.hidden), init_log_std=cfg.init_log_std, activation=act)
            self.critic = AgentMLP(n, crit_in, tuple(cfg.hidden), 1, activation=act)
            self.cost_critic = AgentMLP(n, crit_in, tuple(cfg.hidden), self.m, activation=act) if self.m else None
        clip = cfg.max_grad_norm or None
        self.policy_opt = AgentAdam(self.policy.parameters(), n, cfg.actor_lr, eps=cfg.adam_eps, max_grad_norm=clip)
        self.critic_opt = AgentAdam(self.critic.parameters(), n, cfg.critic_lr, eps=cfg.adam_eps, max_grad_norm=clip)
        self.cost_opt = (AgentAdam(self.cost_critic.parameters(), n, cfg.critic_lr, eps=cfg.adam_eps, max_grad_norm=clip)
                         if self.cost_critic is not None else None)
        self.obs_rms = RunningMeanStd((n, o))
        self.state_rms = RunningMeanStd((spec.state_dim,)) if cfg.critic_input == "state" else None
        self.ret_rms = RunningMeanStd((n,))
        self.cost_rms = RunningMeanStd((n, self.m))
        self.cost_mask = spec.cost_mask()[:, : self.m] if self.m else np.zeros((n, 0), dtype=bool)
        self.lagrange = (LagrangeMultipliers.from_config(spec.cost_limit_array(), spec.cost_mask(), cfg.lagrange)
                         if self.m and cfg.lagrange.enabled else None)
        self.cost_tracker = EpisodeCostTracker(1, (n, self.m))
        self.iteration = 0
        self.last_plan: UpdatePlan | None = None
        self._last_samples = 0

    # -- inputs -----------------------------------------------------------------------------------
    def normalize_obs(self, obs: np.ndarray) -> torch.Tensor:
        x = self.obs_rms.normalize(obs) if self.cfg.obs_norm else obs
        return torch.as_tensor(np.asarray(x), dtype=torch.float32)

    def policy_input(self, x: torch.Tensor) -> torch.Tensor:
        return gather_neighbourhood(x, self.pol_idx, self.pol_mask)

    def critic_input(self, x: torch.Tensor, state: np.ndarray | None = None) -> torch.Tensor:
        """``[..., n, in]``: agent ``i``'s row holds only what its critic may read (``N_i``'s observations)."""
        if self.cfg.critic_input == "state":
            s = self.state_rms.normalize(state) if self.cfg.obs_norm else state
            s = torch.as_tensor(np.asarray(s), dtype=torch.float32)
            return s[..., None, :].expand(*s.shape[:-1], self.n, s.shape[-1])
        return gather_neighbourhood(x, self.nbr_idx, self.nbr_mask)

    def values(self, obs: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Denormalised reward values ``[..., n]`` and cost values ``[..., n, m]`` of observations ``obs[..., n, o]``."""
        with torch.no_grad():
            cin = self.critic_input(self.normalize_obs(obs), state)
            v = self.critic(cin)[..., 0].double().numpy()
            c = self.cost_critic(cin).double().numpy() if self.cost_critic is not None else np.zeros(v.shape + (0,))
        if self.cfg.value_norm:
            v = v * np.sqrt(self.ret_rms.var + 1e-8) + self.ret_rms.mean
            c = c * np.sqrt(self.cost_rms.var + 1e-8) + self.cost_rms.mean
        return v, c

    # -- acting -----------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, info: dict, deterministic: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        with torch.no_grad():
            dist = self.policy.distribution(self.policy_input(self.normalize_obs(obs)))
            if deterministic:
                a = self.policy.mode(dist)
            elif self.spec.action_kind == "discrete":
                probs = dist.probs
                a = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=self.gen).reshape(probs.shape[:-1])
            else:
                noise = torch.randn(dist.mean.shape, generator=self.gen)
                a = (dist.mean + dist.stddev * noise) * self.policy.action_mask
            logp = self.policy.log_prob(dist, a)
        if self.spec.action_kind == "discrete":
            return a.numpy().astype(np.int64), {"logp": logp.numpy()}
        raw = a.numpy().astype(np.float64)
        env_a = np.clip(raw, self.spec.action_low, self.spec.action_high) * self.spec.action_mask()
        return env_a, {"raw_action": raw, "logp": logp.numpy()}

    # -- learning ---------------------------------------------------------------------------------
    def update_multipliers(self, rollout: Rollout) -> np.ndarray | None:
        """Step λ from the costs of the episodes that ended in this rollout; their mean ``[n, m]`` (None if none ended)."""
        ended = self.cost_tracker.add(rollout.cost[..., : self.m], rollout.done)
        if not len(ended):
            return None
        episode_cost = ended.mean(axis=0)
        if self.lagrange is not None:
            self.lagrange.update(episode_cost)
        return episode_cost

    def advantages(self, rollout: Rollout) -> dict[str, np.ndarray]:
        """GAE of the (mixed) reward and of each cost, the λ-return targets and the combined advantage."""
        cfg = self.cfg
        T, B, n = rollout.reward.shape
        state, next_state = rollout.infos.get("state"), rollout.infos.get("next_state")
        v, cv = self.values(rollout.obs, state)
        nv, ncv = self.values(rollout.next_obs, next_state)
        reward = neighbourhood_mean(rollout.reward * cfg.reward_scale, self.rew_idx, self.rew_mask)
        adv, ret = gae(reward, v, nv, rollout.terminated, rollout.done, cfg.gamma, cfg.gae_lambda)
        adv = adv.reshape(T * B, n)
        if cfg.advantage_norm:
            adv = normalize_per_agent(adv)
        out = {"reward_adv": adv, "returns": ret.reshape(T * B, n)}
        combined = adv
        if self.m:
            cadv, cret = gae(rollout.cost[..., : self.m], cv, ncv, rollout.terminated, rollout.done, cfg.gamma, cfg.gae_lambda)
            cadv = cadv.reshape(T * B, n, self.m) * self.cost_mask
            if cfg.advantage_norm:
                cadv = normalize_per_agent(cadv) * self.cost_mask
            out.update(cost_adv=cadv, cost_returns=cret.reshape(T * B, n, self.m))
            if self.lagrange is not None:
                lam = self.lagrange.value[:, : self.m] * self.cost_mask             # [n, m]
                combined = adv - (cadv * lam).sum(-1)                               # Eq. 21 (without d)
                if cfg.penalty_normalize:
                    combined = combined / (1.0 + lam.sum(-1))
        out["advantage"] = combined
        return out

    def update(self, rollout: Rollout) -> dict[str, float]:
        cfg = self.cfg
        T, B, n = rollout.reward.shape
        S = T * B
        metrics: dict[str, float] = {}
        episode_cost = self.update_multipliers(rollout) if self.m else None
        data = self.advantages(rollout)
        # normalisers: returns first (critic targets use the new statistics), observations last
        # (so this update's policy inputs are the ones the actions were sampled with)
        if cfg.value_norm:
            self.ret_rms.update(data["returns"])
            if self.m:
                self.cost_rms.update(data["cost_returns"])
        x = self.normalize_obs(rollout.obs).reshape(S, n, -1)
        cin = self.critic_input(x, rollout.infos["state"].reshape(S, -1) if self.state_rms is not None else None)
        metrics.update(self.update_critics(cin, data))
        pin = self.policy_input(x)
        if self.spec.action_kind == "discrete":
            actions = torch.as_tensor(rollout.actions.reshape(S, n), dtype=torch.long)
        else:
            actions = torch.as_tensor(rollout.extras["raw_action"].reshape(S, n, -1), dtype=torch.float32)
        adv = torch.as_tensor(data["advantage"], dtype=torch.float32)
        metrics.update(self.update_policies(pin, actions, adv))
        if cfg.obs_norm:
            self.obs_rms.update(rollout.obs.reshape(S, n, -1))
            if self.state_rms is not None:
                self.state_rms.update(rollout.infos["state"].reshape(S, -1))
        self.iteration += 1
        self._last_samples = S
        metrics.update(self._constraint_metrics(episode_cost))
        return metrics

    def update_critics(self, cin: torch.Tensor, data: dict[str, np.ndarray]) -> dict[str, float]:
        """Eq. 23 with λ-return targets: every agent's reward (and cost) critic, all in one batched step."""
        cfg = self.cfg
        huber = cfg.huber_delta or None
        ret = self.ret_rms.normalize(data["returns"], clip=None) if cfg.value_norm else data["returns"]
        target = torch.as_tensor(ret, dtype=torch.float32)
        if self.m:
            cret = self.cost_rms.normalize(data["cost_returns"], clip=None) if cfg.value_norm else data["cost_returns"]
            ctarget = torch.as_tensor(cret, dtype=torch.float32)
            cmask = torch.as_tensor(self.cost_mask, dtype=torch.float32)
        losses, closses = [], []
        for _ in range(cfg.epochs):
            for mb in minibatches(cin.shape[0], cfg.minibatches, self.rng):
                loss = value_loss(self.critic(cin[mb])[..., 0], target[mb], huber_delta=huber).mean(0).sum()
                self.critic_opt.zero_grad()
                loss.backward()
                self.critic_opt.step()
                losses.append(loss.item() / self.n)
                if self.cost_critic is not None:
                    closs = (value_loss(self.cost_critic(cin[mb]), ctarget[mb], huber_delta=huber) * cmask).mean(0).sum()
                    self.cost_opt.zero_grad()
                    closs.backward()
                    self.cost_opt.step()
                    closses.append(closs.item() / max(1.0, float(self.cost_mask.sum())))
        out = {"train/loss_value": float(np.mean(losses))}
        if closses:
            out["train/loss_cost_value"] = float(np.mean(closses))
        return out

    def plan(self) -> UpdatePlan | None:
        """This iteration's update plan (None: all agents at once, no correction factor)."""
        return plan_updates(self.plan_graph, self.kappa, self.rng) if self.sequential else None

    def policy_objective(self, pin: torch.Tensor, actions: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor,
                         correction: torch.Tensor, agents: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 22 for ``agents`` (all when None): per agent, the sample mean of
        ``min(ρ M A, clip(ρ, 1 ± ε) M A)`` with ``ρ = π_new/π_old``, and the mean entropy (``[k]`` each)."""
        dist = subset_distribution(self.policy, pin, agents)
        logp = subset_log_prob(self.policy, dist, actions, agents)
        surr = clipped_surrogate(logp, logp_old, adv, self.cfg.clip, correction=correction)
        return surr.mean(0), subset_entropy(self.policy, dist, agents).mean(0)

    def update_policies(self, pin: torch.Tensor, actions: torch.Tensor, adv: torch.Tensor) -> dict[str, float]:
        """Eq. 22 stage by stage: PPO-clip on the correction-weighted combined advantage."""
        cfg = self.cfg
        S, n = adv.shape
        with torch.no_grad():
            dist = self.policy.distribution(pin)
            logp_old = self.policy.log_prob(dist, actions)
        plan = self.plan()
        self.last_plan = plan
        stages = plan.stages if plan is not None else (tuple(range(n)),)
        preds = plan.predecessor_mask() if plan is not None else np.zeros((n, n), dtype=bool)
        log_ratio = torch.zeros(S, n)              # log π̄^j/π^j of the agents updated so far
        pol_losses, entropies, corrections = [], [], []
        for stage in stages:
            agents = None if len(stage) == n else torch.as_tensor(stage, dtype=torch.long)
            cols = torch.arange(n) if agents is None else agents
            active = torch.zeros(n, dtype=torch.bool)
            active[cols] = True
            correction = torch.exp(log_correction(log_ratio, preds[cols.numpy()]))     # [S, k] M_i, constant
            corrections.append(correction.mean().item())
            for _ in range(cfg.epochs):
                for mb in minibatches(S, cfg.minibatches, self.rng):
                    mb_t = torch.as_tensor(mb, dtype=torch.long)
                    surr, ent = self.policy_objective(pin[mb_t][:, cols], actions[mb_t][:, cols],
                                                      logp_old[mb_t][:, cols], adv[mb_t][:, cols],
                                                      correction[mb_t], agents)
                    loss = -(surr + cfg.entropy_coef * ent).sum()
                    self.policy_opt.zero_grad()
                    loss.backward()
                    self.policy_opt.step(active)
                    pol_losses.append(-surr.mean().item())
                    entropies.append(ent.mean().item())
            with torch.no_grad():                 # the stage's new/old ratios enter its successors' factors
                dist = subset_distribution(self.policy, pin[:, cols], agents)
                log_ratio[:, cols] = subset_log_prob(self.policy, dist, actions[:, cols], agents) - logp_old[:, cols]
        ratio = log_ratio.exp()
        return {"train/loss_policy": float(np.mean(pol_losses)), "train/entropy": float(np.mean(entropies)),
                "train/approx_kl": float(((ratio - 1) - log_ratio).mean()),
                "train/clip_frac": float(((ratio - 1).abs() > cfg.clip).float().mean()),
                "train/correction_mean": float(np.mean(corrections)), "train/stages": float(len(stages))}

    def _constraint_metrics(self, episode_cost: np.ndarray | None) -> dict[str, float]:
        out: dict[str, float] = {}
        if not self.m or self.lagrange is None:
            return out
        for j, name in enumerate(self.spec.cost_names[: self.m]):
            lam = self.lagrange.value[self.cost_mask[:, j], j]
            out[f"train/lagrange/{name}"] = float(lam.mean())
            out[f"train/lagrange_max/{name}"] = float(lam.max())
        return out

    # -- communication ------------------------------------------------------------------------------
    def communication(self) -> dict[str, float]:
        """Floats agents receive from other agents (see the README's Communication section).

        Per env step of one copy: the neighbours' observations a ``neighbourhood`` policy reads.
        Per update (all copies): per sample, the critic's inputs from other agents, the other agents'
        rewards the mixed reward needs, and one ratio from each predecessor for the correction factor.
        """
        o = self.spec.obs_dim
        per_step = neighbourhood_floats(self.pol_mask, o)
        if self.cfg.critic_input == "state":
            critic = float(self.n * self.spec.state_dim)
        else:
            critic = neighbourhood_floats(self.nbr_mask, o)
        reward = neighbourhood_floats(self.rew_mask, 1)
        preds = float(self.last_plan.predecessor_mask().sum()) if self.last_plan is not None else 0.0
        per_sample = critic + reward + preds
        return {"floats_per_step": per_step, "floats_per_update": per_sample * self._last_samples}

    # -- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "policy": self.policy.state_dict(), "critic": self.critic.state_dict(),
            "policy_opt": self.policy_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "obs_rms": self.obs_rms.state_dict(), "ret_rms": self.ret_rms.state_dict(),
            "cost_rms": self.cost_rms.state_dict(), "cost_tracker": self.cost_tracker.state_dict(),
            "iteration": self.iteration, "rng": json.dumps(self.rng.bit_generator.state),
            "gen": self.gen.get_state(),
        }
        if self.cost_critic is not None:
            state["cost_critic"] = self.cost_critic.state_dict()
            state["cost_opt"] = self.cost_opt.state_dict()
        if self.state_rms is not None:
            state["state_rms"] = self.state_rms.state_dict()
        if self.lagrange is not None:
            state["lagrange"] = self.lagrange.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.policy_opt.load_state_dict(state["policy_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.ret_rms.load_state_dict(state["ret_rms"])
        self.cost_rms.load_state_dict(state["cost_rms"])
        self.cost_tracker.load_state_dict(state["cost_tracker"])
        self.iteration = int(state["iteration"])
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.gen.set_state(state["gen"])
        if self.cost_critic is not None:
            self.cost_critic.load_state_dict(state["cost_critic"])
            self.cost_opt.load_state_dict(state["cost_opt"])
        if self.state_rms is not None:
            self.state_rms.load_state_dict(state["state_rms"])
        if self.lagrange is not None:
            self.lagrange.load_state_dict(state["lagrange"])


class IPPO(PPOFamily):
    """Independent PPO (Yu et al. 2022 baseline): local critics, all agents updated at once, no constraints."""

    scope, sequential, constrained = "local", False, False


class MAPPO(PPOFamily):
    """MAPPO: centralized critics, all agents updated at once, no constraints."""

    scope, sequential, constrained = "global", False, False


class HAPPO(PPOFamily):
    """HAPPO (Kuba et al. 2022): centralized critics, sequential updates with the correction factor."""

    scope, sequential, constrained = "global", True, False


class MAPPOL(PPOFamily):
    """MAPPO-L (Gu et al. 2023): HAPPO's scheme with cost critics and per-agent Lagrange multipliers."""

    scope, sequential, constrained = "global", True, True

    def __init__(self, spec: GameSpec, cfg: SafePPOConfig, **kwargs: Any) -> None:
        super().__init__(spec, cfg, **kwargs)


class DecMAPPOL(PPOFamily):
    """DEC-MAPPO-L (Algorithm 1): κ-hop critics, κ-hop correction factor, non-interacting agents in one step."""

    scope, sequential, constrained = "kappa", True, True

    def __init__(self, spec: GameSpec, cfg: DecSafePPOConfig, **kwargs: Any) -> None:
        super().__init__(spec, cfg, **kwargs)
