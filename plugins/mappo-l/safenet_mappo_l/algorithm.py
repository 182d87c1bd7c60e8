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
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
import torch

from safenet.algorithm import Algorithm
from safenet.errors import ConfigError, IncompatibleError
from safenet.game import GameSpec
from safenet.graph import Graph
from safenet.lagrange import LagrangeMultipliers
from safenet.nets import BLOCK_FLOATS, agent_blocks, blocked_grad_
from safenet.onpolicy import AgentGather, EpisodeCostTracker, neighbourhood_floats, neighbourhood_mean, normalize_per_agent
from safenet.ppo import RunningMeanStd, clipped_surrogate, minibatches, value_loss
from safenet.rollout import Rollout, gae
from safenet.schedule import UpdatePlan, plan_updates
from safenet.stacked import NeighbourhoodMLP, NumpyPolicy, StackedAdam, StackedPolicy, adam_rows_

from .config import DecSafePPOConfig, PPOConfig, SafePPOConfig

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
    #: action noise per game copy when the trainer sets ``copy_streams`` (safenet.copies)
    per_copy_sampling = True
    #: the last reward-rate cap on λ (``algo.lagrange_cap="reward_rate"``), for the metrics
    _cap: np.ndarray | None = None

    def __init__(self, spec: GameSpec, cfg: PPOConfig, *, seed: int = 0, device: str = "cpu") -> None:
        super().__init__(spec, cfg, seed=seed, device=device)
        n, o = spec.n, spec.obs_dim
        self.n = n
        self.dev = torch.device(device)
        self.rng = np.random.default_rng(seed)                       # update plans and actor minibatches
        self.critic_rng = np.random.default_rng([int(seed), 1])      # critic minibatches (may run in a thread)
        self.act_rng = np.random.default_rng([int(seed), 2])         # action sampling
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
        if cfg.critic_input == "state":           # every agent's critic reads the one global state
            crit_idx, crit_mask, crit_d, crit_src = np.zeros((n, 1), dtype=np.int64), np.ones((n, 1), bool), spec.state_dim, 1
        else:
            crit_idx, crit_mask, crit_d, crit_src = self.nbr_idx, self.nbr_mask, o, n
        # parameters are drawn from a generator seeded by the algorithm's seed: same seed, same nets
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) % 2**63)
            self.policy = StackedPolicy(n, self.pol_idx.shape[1] * o, spec.action_kind, spec.action_dims,
                                        hidden=tuple(cfg.hidden), init_log_std=cfg.init_log_std,
                                        activation=cfg.activation, shared=cfg.share_parameters).to(self.dev)
            critic = partial(NeighbourhoodMLP, crit_idx, crit_mask, crit_d, tuple(cfg.hidden),
                             activation=cfg.activation, n_sources=crit_src, shared=cfg.share_parameters)
            self.critic = critic(1).to(self.dev)
            self.cost_critic = critic(self.m).to(self.dev) if self.m else None
        opt = {"eps": cfg.adam_eps, "max_grad_norm": cfg.max_grad_norm or None}
        self.policy_opt = StackedAdam(self.policy.flat, cfg.actor_lr, **opt)
        self.critic_opt = StackedAdam(self.critic.flat, cfg.critic_lr, **opt)
        self.cost_opt = StackedAdam(self.cost_critic.flat, cfg.critic_lr, **opt) if self.cost_critic is not None else None
        self.nbr = AgentGather(self.nbr_idx, self.nbr_mask, self.dev)
        self.pol = AgentGather(self.pol_idx, self.pol_mask, self.dev)
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
        self._critic_job: Future | None = None
        self._critic_metrics: dict[str, float] = {}
        self._executor: ThreadPoolExecutor | None = None
        self.acting: NumpyPolicy | None = None     # the NumPy acting copy, made at the next act()

    # -- inputs -----------------------------------------------------------------------------------
    def normalize_obs(self, obs: np.ndarray) -> torch.Tensor:
        """Normalised observations ``[..., n, o]`` as float32 (on the CPU)."""
        x = self.obs_rms.normalize(obs) if self.cfg.obs_norm else obs
        return torch.as_tensor(np.asarray(x), dtype=torch.float32)

    def _agent_major(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., n, d]`` → ``[n, N, d]`` on the algorithm's device."""
        return x.reshape(-1, self.n, x.shape[-1]).transpose(0, 1).contiguous().to(self.dev)

    def policy_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x[..., n, o]`` → ``[n, N, in]``: agent ``i``'s row holds what its policy reads."""
        return self.pol(self._agent_major(x))

    def critic_source(self, x: torch.Tensor, state: np.ndarray | None = None) -> torch.Tensor:
        """What the critics read, sample-major on the device: ``x[..., n, o]`` → ``[N, n, o]`` (each agent's
        critic reads its neighbourhood's rows), or the normalised global state ``[N, 1, s]``."""
        if self.cfg.critic_input == "state":
            s = self.state_rms.normalize(state) if self.cfg.obs_norm else state
            return torch.as_tensor(np.asarray(s), dtype=torch.float32).reshape(-1, 1, s.shape[-1]).to(self.dev)
        return x.reshape(-1, self.n, x.shape[-1]).to(self.dev)

    @torch.no_grad()
    def values(self, obs: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Denormalised reward values ``[..., n]`` and cost values ``[..., n, m]`` of observations ``obs[..., n, o]``."""
        self.wait()
        lead = obs.shape[:-2]
        src = self.critic_source(self.normalize_obs(obs), state)
        vs, cs = [], []
        for chunk in self.sample_chunks(src.shape[0]):            # bounded activations at large n
            inp = self.critic.share_input(src[chunk])
            vs.append(self.critic.forward_shared(inp)[..., 0].T)
            if self.cost_critic is not None:
                cs.append(self.cost_critic.forward_shared(inp).transpose(0, 1))
        v = torch.cat(vs).double().cpu().numpy().reshape(*lead, self.n)
        if self.cost_critic is not None:
            c = torch.cat(cs).double().cpu().numpy().reshape(*lead, self.n, self.m)
        else:
            c = np.zeros(v.shape + (0,))
        if self.cfg.value_norm:
            v = v * np.sqrt(self.ret_rms.var + 1e-8) + self.ret_rms.mean
            c = c * np.sqrt(self.cost_rms.var + 1e-8) + self.cost_rms.mean
        return v, c

    #: floats one full-batch activation may hold before no-grad passes go in chunks of samples
    chunk_floats: int = 2 ** 24

    def sample_chunks(self, samples: int, agents: int | None = None) -> list[slice]:
        """Slices of the sample axis so that a pass over ``agents`` (default all) holds at most
        ``chunk_floats`` per activation (one slice, the whole batch, unless ``agents × samples × width``
        passes it: memory linear in n)."""
        width = max(max(self.cfg.hidden), self.critic.in_features)
        per = max(1, self.chunk_floats // max(1, (agents or self.n) * width))
        return [slice(a, min(a + per, samples)) for a in range(0, samples, per)] or [slice(0, 0)]

    @torch.no_grad()
    def log_probs(self, pin: torch.Tensor, actions: torch.Tensor, params: torch.Tensor | None = None,
                  agents: torch.Tensor | None = None) -> torch.Tensor:
        """``[k, S]`` log-probabilities of ``actions`` under ``params`` (no grad), in chunks of samples."""
        return torch.cat([self.policy.log_prob_entropy(pin[:, c], actions[:, c], params, agents)[0]
                          for c in self.sample_chunks(pin.shape[1])], dim=1)

    # -- acting -----------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, info: dict, deterministic: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        # between updates the policy acts from a NumPy copy (NumpyPolicy, refreshed after each update):
        # per-step inference on a few copies is latency-bound, and NumPy's per-call cost is the lowest
        lead = obs.shape[:-2]
        x = (self.obs_rms.normalize(obs) if self.cfg.obs_norm else obs).reshape(-1, self.n, obs.shape[-1])
        x = x.astype(np.float32).transpose(1, 0, 2)                               # [n, N, o]
        if not self.pol.identity:
            x = (x[self.pol_idx] * self.pol_mask[:, :, None, None]).transpose(0, 2, 1, 3).reshape(self.n, x.shape[1], -1)
        if self.acting is None:
            self.acting = NumpyPolicy(self.policy)
        # per-copy action noise when the trainer set copy streams for this batch (trainer.workers splits
        # the copies over processes; the draws stay those of one process), else the algorithm's own stream
        streams = self.copy_streams
        rng = streams.along(1) if streams is not None and len(lead) == 1 and len(streams) == lead[0] else self.act_rng
        a, logp = self.acting.act(x, rng, deterministic)
        logp = logp.T.reshape(*lead, self.n)
        if self.spec.action_kind == "discrete":
            return a.T.reshape(*lead, self.n).astype(np.int64), {"logp": logp}
        raw = a.transpose(1, 0, 2).reshape(*lead, self.n, -1).astype(np.float64)
        env_a = np.clip(raw, self.spec.action_low, self.spec.action_high) * self.spec.action_mask()
        return env_a, {"raw_action": raw, "logp": logp}

    # -- learning ---------------------------------------------------------------------------------
    def update_multipliers(self, rollout: Rollout) -> np.ndarray | None:
        """Step λ from the costs of the episodes that ended in this rollout; their mean ``[n, m]`` (None if none ended)."""
        ended = self.cost_tracker.add(rollout.cost[..., : self.m], rollout.done)
        if not len(ended):
            return None
        episode_cost = ended.mean(axis=0)
        if self.lagrange is not None:
            self.lagrange.update(episode_cost, self.lagrange_cap(rollout))
        return episode_cost

    def lagrange_cap(self, rollout: Rollout) -> np.ndarray | None:
        """``algo.lagrange_cap="reward_rate"``: per agent, ``max(lagrange.max_value, r̄_i)`` with ``r̄_i``
        the mean per-step reward agent ``i`` learns from in this rollout (scaled and mixed as in
        :meth:`advantages`); ``None`` (the fixed cap) otherwise."""
        cfg = self.cfg
        if cfg.lagrange_cap != "reward_rate":
            return None
        reward = neighbourhood_mean(rollout.reward * cfg.reward_scale, self.rew_idx, self.rew_mask)
        rate = reward.reshape(-1, self.n).mean(axis=0)
        self._cap = np.maximum(float(cfg.lagrange.max_value), rate)
        return self._cap

    def next_values(self, rollout: Rollout, v: np.ndarray, cv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values of ``next_obs``: where ``next_obs[t]`` is ``obs[t + 1]`` (no episode ended) they are
        ``v[t + 1]``; only the other rows (episode ends, the last step) go through the critics."""
        T = v.shape[0]
        same = np.zeros(rollout.done.shape, dtype=bool)
        if T > 1:
            same[:-1] = ~rollout.done[:-1] & (rollout.next_obs[:-1] == rollout.obs[1:]).all(axis=(-2, -1))
            if self.state_rms is not None:
                same[:-1] &= (rollout.infos["next_state"][:-1] == rollout.infos["state"][1:]).all(axis=-1)
        nv, ncv = np.empty_like(v), np.empty_like(cv)
        nv[:-1][same[:-1]], ncv[:-1][same[:-1]] = v[1:][same[:-1]], cv[1:][same[:-1]]
        rest = ~same
        if rest.any():
            state = rollout.infos["next_state"][rest] if self.state_rms is not None else None
            nv[rest], ncv[rest] = self.values(rollout.next_obs[rest], state)
        return nv, ncv

    def advantages(self, rollout: Rollout) -> dict[str, np.ndarray]:
        """GAE of the (mixed) reward and of each cost, the λ-return targets and the combined advantage."""
        cfg = self.cfg
        T, B, n = rollout.reward.shape
        v, cv = self.values(rollout.obs, rollout.infos.get("state"))
        nv, ncv = self.next_values(rollout, v, cv)
        reward = neighbourhood_mean(rollout.reward * cfg.reward_scale, self.rew_idx, self.rew_mask)
        adv, ret = gae(reward, v, nv, rollout.terminated, rollout.done, cfg.gamma, cfg.gae_lambda)
        raw_adv = adv.reshape(T * B, n)
        adv = normalize_per_agent(raw_adv) if cfg.advantage_norm else raw_adv
        out = {"reward_adv": adv, "returns": ret.reshape(T * B, n)}
        combined = adv
        if self.m:
            cadv, cret = gae(rollout.cost[..., : self.m], cv, ncv, rollout.terminated, rollout.done, cfg.gamma, cfg.gae_lambda)
            raw_cadv = cadv.reshape(T * B, n, self.m) * self.cost_mask
            cadv = normalize_per_agent(raw_cadv) * self.cost_mask if cfg.advantage_norm else raw_cadv
            out.update(cost_adv=cadv, cost_returns=cret.reshape(T * B, n, self.m))
            if self.lagrange is not None:
                lam = self.lagrange.value[:, : self.m] * self.cost_mask             # [n, m]
                if cfg.penalty_units == "reward":
                    # λ in reward per unit cost: Eq. 21 (without d) on the raw advantages, then one
                    # standardisation of the result (a positive scale: the preferences of Eq. 21 stay)
                    combined = raw_adv - (raw_cadv * lam).sum(-1)
                    if cfg.advantage_norm:
                        combined = normalize_per_agent(combined)
                else:
                    combined = adv - (cadv * lam).sum(-1)                           # Eq. 21 (without d)
                    if cfg.penalty_normalize:
                        combined = combined / (1.0 + lam.sum(-1))
        out["advantage"] = combined
        return out

    def update(self, rollout: Rollout) -> dict[str, float]:
        cfg = self.cfg
        T, B, n = rollout.reward.shape
        S = T * B
        self.wait()
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
        state = rollout.infos["state"].reshape(S, -1) if self.state_rms is not None else None
        job = partial(self.update_critics, self.critic_source(x, state), *self.critic_targets(data))
        if cfg.critic_overlap:
            # the critics are not needed again until the next update's advantages: they learn in a
            # background thread while the policies update and the next rollout is collected
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="safenet-critics")
            self._critic_job = self._executor.submit(job)
        else:
            self._critic_metrics = job()
        pin = self.policy_input(x)
        if self.spec.action_kind == "discrete":
            actions = torch.as_tensor(rollout.actions.reshape(S, n).T, dtype=torch.long)
        else:
            actions = torch.as_tensor(rollout.extras["raw_action"].reshape(S, n, -1), dtype=torch.float32).transpose(0, 1)
        adv = torch.as_tensor(data["advantage"].T, dtype=torch.float32)
        metrics.update(self.update_policies(pin, actions.contiguous().to(self.dev), adv.contiguous().to(self.dev)))
        self.acting = None                    # the NumPy acting copy, made at the next act()
        if cfg.obs_norm:
            self.obs_rms.update(rollout.obs.reshape(S, n, -1))
            if self.state_rms is not None:
                self.state_rms.update(rollout.infos["state"].reshape(S, -1))
        self.iteration += 1
        self._last_samples = S
        metrics.update(self._constraint_metrics(episode_cost))
        # the losses of the latest critic update that has finished (overlapped: the previous iteration's)
        metrics.update(self._critic_metrics)
        return metrics

    def wait(self) -> None:
        """Finish a critic update still running in the background."""
        job, self._critic_job = self._critic_job, None
        if job is not None:
            self._critic_metrics = job.result()

    def critic_targets(self, data: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Agent-major λ-return targets ``[n, S]`` and ``[n, S, m]`` (normalised when value_norm)."""
        cfg = self.cfg
        ret = self.ret_rms.normalize(data["returns"], clip=None) if cfg.value_norm else data["returns"]
        target = torch.as_tensor(ret.T, dtype=torch.float32).contiguous().to(self.dev)
        if not self.m:
            return target, None
        cret = self.cost_rms.normalize(data["cost_returns"], clip=None) if cfg.value_norm else data["cost_returns"]
        return target, torch.as_tensor(cret, dtype=torch.float32).transpose(0, 1).contiguous().to(self.dev)

    def update_critics(self, src: torch.Tensor, target: torch.Tensor, ctarget: torch.Tensor | None) -> dict[str, float]:
        """Eq. 23 with λ-return targets: every agent's reward (and cost) critic, all in one batched step.

        ``src[S, ·, d]`` (:meth:`critic_source`), ``target[n, S]``, ``ctarget[n, S, m]``. Each critic keeps its own Adam and
        per-agent gradient clip; one backward pass serves both (their parameters are disjoint).
        """
        cfg = self.cfg
        huber = cfg.huber_delta or None
        cmask = torch.as_tensor(self.cost_mask, dtype=torch.float32, device=self.dev)[:, None, :]
        losses, closses = [], []
        blocks = self.critic_blocks(-(-src.shape[0] // cfg.minibatches))
        for _ in range(cfg.epochs):
            for mb in minibatches(src.shape[0], cfg.minibatches, self.critic_rng):
                if blocks is not None:    # large n: block of agents by block, the same gradients in cache
                    loss, closs = self.critic_grads_by_blocks(src, torch.as_tensor(mb, device=self.dev), target,
                                                              ctarget, cmask, blocks)
                    losses.append(loss)
                    if closs is not None:
                        closses.append(closs)
                    self.critic_opt.step()
                    if self.cost_opt is not None:
                        self.cost_opt.step()
                    continue
                parts = self.sample_chunks(len(mb))
                for part in parts:        # one part unless n is large: then the minibatch's gradient is accumulated
                    mb_t = torch.as_tensor(mb[part], device=self.dev)
                    share = 1.0 if len(parts) == 1 else len(mb_t) / len(mb)
                    x = self.critic.share_input(src.index_select(0, mb_t))
                    loss = value_loss(self.critic.forward_shared(x)[..., 0], target.index_select(1, mb_t),
                                      huber_delta=huber).mean(1).sum() * share
                    total = loss
                    if self.cost_critic is not None:
                        closs = (value_loss(self.cost_critic.forward_shared(x), ctarget.index_select(1, mb_t),
                                            huber_delta=huber) * cmask).mean(1).sum() * share
                        total = loss + closs
                        closses.append(closs.detach() / share)
                    total.backward()
                    losses.append(loss.detach() / share)
                self.critic_opt.step()
                if self.cost_opt is not None:
                    self.cost_opt.step()
        out = {"train/loss_value": float(torch.stack(losses).mean()) / self.n}
        if closses:
            out["train/loss_cost_value"] = float(torch.stack(closses).mean()) / max(1.0, float(self.cost_mask.sum()))
        return out

    #: floats one activation of a block of agents may hold in a critic step (see :func:`safenet.nets.agent_blocks`)
    block_floats: int = BLOCK_FLOATS

    def critic_blocks(self, samples: int) -> list[slice] | None:
        """Blocks of agents for a critic step on ``samples`` samples, or None: one full-width pass (small n,
        dense first layers, shared networks)."""
        if self.critic.dense or self.critic.members == 1:
            return None
        blocks = agent_blocks(self.n, samples, max(self.critic.in_features, *self.cfg.hidden), self.block_floats)
        return blocks if len(blocks) > 1 else None

    def critic_grads_by_blocks(self, src: torch.Tensor, mb_t: torch.Tensor, target: torch.Tensor,
                               ctarget: torch.Tensor | None, cmask: torch.Tensor,
                               blocks: list[slice]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The critics' (and cost critics') gradients of minibatch ``mb_t``, block of agents by block
        (:func:`safenet.nets.blocked_grad_`): each agent's loss is its own, so the gradients are the
        full-width ones. Returns the losses (summed over agents)."""
        huber = self.cfg.huber_delta or None
        x_mb = src.index_select(0, mb_t)
        parts: list[torch.Tensor] = []
        cparts: list[torch.Tensor] = []
        nets = [self.critic] + ([self.cost_critic] if self.cost_critic is not None else [])

        def block_loss(rows: slice, leaves: list[torch.Tensor]) -> torch.Tensor:
            x = self.critic.share_input(x_mb, rows)
            loss = value_loss(self.critic(x, leaves[0])[..., 0], target[rows].index_select(1, mb_t),
                              huber_delta=huber).mean(1).sum()
            parts.append(loss.detach())
            if self.cost_critic is None:
                return loss
            closs = (value_loss(self.cost_critic(x, leaves[1]), ctarget[rows].index_select(1, mb_t),
                                huber_delta=huber) * cmask[rows]).mean(1).sum()
            cparts.append(closs.detach())
            return loss + closs

        blocked_grad_([net.flat for net in nets], blocks, block_loss)
        return torch.stack(parts).sum(), torch.stack(cparts).sum() if cparts else None

    def plan(self) -> UpdatePlan | None:
        """This iteration's update plan (None: all agents at once, no correction factor; also with
        ``share_parameters``, whose one network cannot be updated agent by agent)."""
        return plan_updates(self.plan_graph, self.kappa, self.rng) if self.sequential and not self.cfg.share_parameters else None

    def policy_objective(self, pin: torch.Tensor, actions: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor,
                         correction: torch.Tensor | None, params: torch.Tensor | None = None,
                         agents: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 22 for ``agents`` (rows ``params``; all when None), agent-major ``[k, N, ...]`` inputs:
        per agent, the sample mean of ``min(ρ M A, clip(ρ, 1 ± ε) M A)`` with ``ρ = π_new/π_old``, and
        the mean entropy (``[k]`` each)."""
        logp, ent = self.policy.log_prob_entropy(pin, actions, params, agents)
        surr = clipped_surrogate(logp, logp_old, adv, self.cfg.clip, correction=correction)
        return surr.mean(1), ent.mean(1)

    def update_policies(self, pin: torch.Tensor, actions: torch.Tensor, adv: torch.Tensor) -> dict[str, float]:
        """Eq. 22 stage by stage: PPO-clip on the correction-weighted combined advantage.

        Agent-major inputs ``pin[n, S, in]``, ``actions[n, S(, a)]``, ``adv[n, S]``. A stage works on a
        copy of its agents' parameter rows and Adam state (written back at its end), so it costs
        what its agents cost whatever ``n`` is.
        """
        cfg = self.cfg
        n, S = adv.shape
        with torch.no_grad():
            logp_old = self.log_probs(pin, actions)
        plan = self.plan()
        self.last_plan = plan
        stages = plan.stages if plan is not None else (tuple(range(n)),)
        preds = self.nbr.slots_of(plan.predecessors) if plan is not None else None
        log_ratio = torch.zeros(n, S, device=self.dev)     # log π̄^j/π^j of the agents updated so far
        hyper = self.policy_opt.hyper()
        pol_losses, entropies, corrections = [], [], []
        for stage in stages:
            whole = len(stage) == n
            agents = None if whole else torch.as_tensor(stage, dtype=torch.long, device=self.dev)
            if whole:
                rows = self.policy_opt.param, self.policy_opt.exp_avg, self.policy_opt.exp_avg_sq, self.policy_opt.steps
                p_in, a_in, lp_in, adv_in = pin, actions, logp_old, adv
            else:
                rows = self.policy_opt.rows(agents)
                p_in, a_in = pin.index_select(0, agents), actions.index_select(0, agents)
                lp_in, adv_in = logp_old.index_select(0, agents), adv.index_select(0, agents)
            params, m, v, steps = rows
            correction = None
            if preds is not None:                          # M_i, constant during the stage
                sel = agents if agents is not None else torch.arange(n, device=self.dev)
                correction = torch.exp(self.nbr.select_sum(log_ratio, preds, sel))
                corrections.append(correction.mean())
            for _ in range(cfg.epochs):
                for mb in minibatches(S, cfg.minibatches, self.rng):
                    parts = self.sample_chunks(len(mb), params.shape[0] if agents is not None else n)
                    grad = None
                    for part in parts:    # one part unless the stage is large: then the gradient is accumulated
                        mb_t = torch.as_tensor(mb[part], device=self.dev)
                        share = 1.0 if len(parts) == 1 else len(mb_t) / len(mb)
                        surr, ent = self.policy_objective(
                            p_in.index_select(1, mb_t), a_in.index_select(1, mb_t), lp_in.index_select(1, mb_t),
                            adv_in.index_select(1, mb_t), None if correction is None else correction.index_select(1, mb_t),
                            params, agents)
                        loss = -(surr + cfg.entropy_coef * ent).sum() * share
                        (g,) = torch.autograd.grad(loss, params)
                        grad = g if grad is None else grad + g
                        pol_losses.append(-surr.detach().mean())
                        entropies.append(ent.detach().mean())
                    adam_rows_(params.data, grad, m, v, steps, **hyper)
            if not whole:
                self.policy_opt.put_rows(agents, params, m, v, steps)
            with torch.no_grad():                 # the stage's new/old ratios enter its successors' factors
                logp_new = self.log_probs(p_in, a_in, params.detach(), agents)
                if whole:
                    log_ratio = logp_new - logp_old
                else:
                    log_ratio.index_copy_(0, agents, logp_new - lp_in)
        ratio = log_ratio.exp()
        stats = torch.stack([torch.stack(pol_losses).mean(), torch.stack(entropies).mean(),
                             ((ratio - 1) - log_ratio).mean(), ((ratio - 1).abs() > cfg.clip).float().mean(),
                             torch.stack(corrections).mean() if corrections else torch.ones((), device=self.dev)]).tolist()
        return {"train/loss_policy": stats[0], "train/entropy": stats[1], "train/approx_kl": stats[2],
                "train/clip_frac": stats[3], "train/correction_mean": stats[4], "train/stages": float(len(stages))}

    def _constraint_metrics(self, episode_cost: np.ndarray | None) -> dict[str, float]:
        out: dict[str, float] = {}
        if not self.m or self.lagrange is None:
            return out
        for j, name in enumerate(self.spec.cost_names[: self.m]):
            lam = self.lagrange.value[self.cost_mask[:, j], j]
            out[f"train/lagrange/{name}"] = float(lam.mean())
            out[f"train/lagrange_max/{name}"] = float(lam.max())
        if self._cap is not None:
            out["train/lagrange_cap"] = float(self._cap.mean())
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
        preds = float(self.last_plan.predecessor_count()) if self.last_plan is not None else 0.0
        per_sample = critic + reward + preds
        return {"floats_per_step": per_step, "floats_per_update": per_sample * self._last_samples}

    # -- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self.wait()
        state: dict[str, Any] = {
            "policy": self.policy.state_dict(), "critic": self.critic.state_dict(),
            "policy_opt": self.policy_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "obs_rms": self.obs_rms.state_dict(), "ret_rms": self.ret_rms.state_dict(),
            "critic_rng": json.dumps(self.critic_rng.bit_generator.state), "critic_metrics": dict(self._critic_metrics),
            "cost_rms": self.cost_rms.state_dict(), "cost_tracker": self.cost_tracker.state_dict(),
            "iteration": self.iteration, "rng": json.dumps(self.rng.bit_generator.state),
            "act_rng": json.dumps(self.act_rng.bit_generator.state),
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
        self.wait()
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
        self.critic_rng.bit_generator.state = json.loads(state["critic_rng"])
        self._critic_metrics = {k: float(v) for k, v in state["critic_metrics"].items()}
        self.act_rng.bit_generator.state = json.loads(state["act_rng"])
        if self.cost_critic is not None:
            self.cost_critic.load_state_dict(state["cost_critic"])
            self.cost_opt.load_state_dict(state["cost_opt"])
        if self.state_rms is not None:
            self.state_rms.load_state_dict(state["state_rms"])
        if self.lagrange is not None:
            self.lagrange.load_state_dict(state["lagrange"])
        self.acting = None                    # the NumPy acting copy, made at the next act()


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
