"""The batched update computes what a plain per-agent implementation computes.

The reference below is written the obvious way: one ``nn.Sequential`` actor and critic per agent,
one ``torch.optim.Adam`` per network after ``clip_grad_norm_``, Python loops over agents, stages,
epochs and minibatches, inputs gathered agent by agent. It starts from the algorithm's parameters,
draws the same update plan and minibatches (the same random streams), and must end with the same
parameters after two updates (float32 tolerance) for ippo, mappo-l and dec-mappo-l (κ = 1 and κ at
the graph's diameter), on a discrete and on a continuous game with heterogeneous action sizes.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from safenet.ppo import minibatches, value_loss
from safenet.rollout import Collector
from safenet.schedule import plan_updates
from safenet.testing import ToyConfig, ToyLineGame

from safenet_mappo_l.algorithm import IPPO, MAPPOL, DecMAPPOL
from safenet_mappo_l.config import DecSafePPOConfig, PPOConfig, SafePPOConfig
from safenet_mappo_l.testing import ReachConfig, ReachGame


def _mlp_from_rows(stacked, row: int) -> nn.Sequential:
    """Agent ``row``'s network of a StackedMLP as an ordinary nn.Sequential (weights copied)."""
    return stacked.member(row)


def _rows_of(seq: nn.Sequential) -> torch.Tensor:
    """The flat row of one reference network (the StackedMLP layout: weight [in, out], then bias)."""
    parts = []
    for lin in (m for m in seq if isinstance(m, nn.Linear)):
        parts += [lin.weight.detach().T.reshape(-1), lin.bias.detach()]
    return torch.cat(parts)


class Reference:
    """Per-agent networks and optimisers; the same update written with loops."""

    def __init__(self, algo) -> None:
        cfg, self.algo = algo.cfg, algo
        n = self.n = algo.n
        self.continuous = algo.spec.action_kind == "continuous"
        self.actors = [_mlp_from_rows(algo.policy.net, i) for i in range(n)]
        self.log_std = [nn.Parameter(algo.policy.net.extras()[i].detach().clone()) for i in range(n)] \
            if self.continuous else []
        self.critics = [_mlp_from_rows(algo.critic, i) for i in range(n)]
        self.cost_critics = [_mlp_from_rows(algo.cost_critic, i) for i in range(n)] if algo.cost_critic else []
        adam = dict(eps=cfg.adam_eps)
        self.actor_opts = [torch.optim.Adam(list(a.parameters()) + ([self.log_std[i]] if self.continuous else []),
                                            lr=cfg.actor_lr, **adam) for i, a in enumerate(self.actors)]
        self.critic_opts = [torch.optim.Adam(c.parameters(), lr=cfg.critic_lr, **adam) for c in self.critics]
        self.cost_opts = [torch.optim.Adam(c.parameters(), lr=cfg.critic_lr, **adam) for c in self.cost_critics]
        self.rng = copy.deepcopy(algo.rng)
        self.critic_rng = copy.deepcopy(algo.critic_rng)
        self.ret_rms, self.cost_rms, self.obs_rms = (copy.deepcopy(algo.ret_rms), copy.deepcopy(algo.cost_rms),
                                                     copy.deepcopy(algo.obs_rms))
        self.mask = algo.policy.action_mask

    # inputs, agent by agent
    def gather(self, x: torch.Tensor, i: int, idx: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        """``x[S, n, o]`` → ``[S, K * o]``: agent i's slots, padded with zeros."""
        return torch.cat([x[:, j] if real else torch.zeros_like(x[:, 0]) for j, real in zip(idx[i], mask[i])], dim=-1)

    def log_prob_entropy(self, i: int, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.actors[i](x)
        mask = self.mask[i]
        if not self.continuous:
            dist = torch.distributions.Categorical(logits=out.masked_fill(~mask, -1e9))
            return dist.log_prob(a), dist.entropy()
        dist = torch.distributions.Normal(out, self.log_std[i].exp().expand_as(out))
        m = mask.float()
        return (dist.log_prob(a) * m).sum(-1), (dist.entropy() * m).sum(-1)

    def update(self, rollout, data: dict) -> None:
        algo, cfg, n = self.algo, self.algo.cfg, self.n
        T, B, _ = rollout.reward.shape
        S = T * B
        self.ret_rms.update(data["returns"])
        if algo.m:
            self.cost_rms.update(data["cost_returns"])
        x = torch.as_tensor(self.obs_rms.normalize(rollout.obs).reshape(S, n, -1), dtype=torch.float32)
        target = torch.as_tensor(self.ret_rms.normalize(data["returns"], clip=None), dtype=torch.float32)
        # critics (Eq. 23): every agent, every minibatch, its own optimiser
        for _ in range(cfg.epochs):
            for mb in minibatches(S, cfg.minibatches, self.critic_rng):
                for i in range(n):
                    cin = self.gather(x[mb], i, algo.nbr_idx, algo.nbr_mask)
                    loss = value_loss(self.critics[i](cin)[:, 0], target[mb, i], huber_delta=cfg.huber_delta).mean()
                    self.critic_opts[i].zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(self.critics[i].parameters(), cfg.max_grad_norm)
                    self.critic_opts[i].step()
                    if algo.m:
                        ctarget = torch.as_tensor(self.cost_rms.normalize(data["cost_returns"], clip=None),
                                                  dtype=torch.float32)
                        closs = value_loss(self.cost_critics[i](cin), ctarget[mb, i], huber_delta=cfg.huber_delta)
                        closs = (closs * torch.as_tensor(algo.cost_mask[i], dtype=torch.float32)).mean(0).sum()
                        self.cost_opts[i].zero_grad()
                        closs.backward()
                        nn.utils.clip_grad_norm_(self.cost_critics[i].parameters(), cfg.max_grad_norm)
                        self.cost_opts[i].step()
        # policies (Eq. 22): stage by stage, the correction factor from already-updated neighbours
        if algo.spec.action_kind == "discrete":
            acts = torch.as_tensor(rollout.actions.reshape(S, n))
        else:
            acts = torch.as_tensor(rollout.extras["raw_action"].reshape(S, n, -1), dtype=torch.float32)
        adv = torch.as_tensor(data["advantage"], dtype=torch.float32)
        pins = [self.gather(x, i, algo.pol_idx, algo.pol_mask) for i in range(n)]
        with torch.no_grad():
            logp_old = [self.log_prob_entropy(i, pins[i], acts[:, i])[0] for i in range(n)]
        plan = plan_updates(algo.plan_graph, algo.kappa, self.rng) if algo.sequential else None
        stages = plan.stages if plan is not None else (tuple(range(n)),)
        log_ratio = [torch.zeros(S) for _ in range(n)]
        for stage in stages:
            corr = {i: torch.exp(sum((log_ratio[j] for j in plan.predecessors[i]), torch.zeros(S)))
                    if plan is not None else None for i in stage}
            for _ in range(cfg.epochs):
                for mb in minibatches(S, cfg.minibatches, self.rng):
                    for i in stage:
                        logp, ent = self.log_prob_entropy(i, pins[i][mb], acts[mb, i])
                        ratio = torch.exp(logp - logp_old[i][mb])
                        a = adv[mb, i] if corr[i] is None else corr[i][mb] * adv[mb, i]
                        surr = torch.minimum(ratio * a, torch.clamp(ratio, 1 - cfg.clip, 1 + cfg.clip) * a).mean()
                        loss = -(surr + cfg.entropy_coef * ent.mean())
                        self.actor_opts[i].zero_grad()
                        loss.backward()
                        params = list(self.actors[i].parameters()) + ([self.log_std[i]] if self.continuous else [])
                        nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                        self.actor_opts[i].step()
            with torch.no_grad():
                for i in stage:
                    log_ratio[i] = self.log_prob_entropy(i, pins[i], acts[:, i])[0] - logp_old[i]
        self.obs_rms.update(rollout.obs.reshape(S, n, -1))

    def policy_rows(self) -> torch.Tensor:
        rows = [_rows_of(a) for a in self.actors]
        if self.continuous:
            rows = [torch.cat([r, s.detach()]) for r, s in zip(rows, self.log_std)]
        return torch.stack(rows)


CASES = {
    "ippo": (IPPO, PPOConfig),
    "mappo-l": (MAPPOL, SafePPOConfig),
    "dec-mappo-l k=1": (DecMAPPOL, lambda **kw: DecSafePPOConfig(kappa=1, **kw)),
    "dec-mappo-l k=diameter": (DecMAPPOL, lambda **kw: DecSafePPOConfig(kappa=4, **kw)),
}


@pytest.mark.parametrize("game_kind", ["discrete", "continuous"])
@pytest.mark.parametrize("case", list(CASES) + ["dec-mappo-l k=1, critics by agent blocks",
                                                "mappo-l, critics by agent blocks"])
def test_the_batched_update_equals_a_per_agent_reference(case, game_kind):
    by_blocks = case.endswith("by agent blocks")
    cls, make_cfg = CASES[case.split(",")[0]]
    if game_kind == "discrete":
        game = ToyLineGame(ToyConfig(n_agents=5, episode_length=6), num_envs=3, seed=0)   # line of 5: diameter 4
    else:
        game = ReachGame(ReachConfig(n_agents=5, episode_length=6), num_envs=3, seed=0)
    cfg = make_cfg(rollout_steps=8, epochs=2, minibatches=3, activation="relu", max_grad_norm=0.5)
    algo = cls(game.spec, cfg, seed=11)
    if by_blocks:            # the large-n path: gathered critic inputs, critic steps block of agents by block
        algo.block_floats = 8
        for net in (algo.critic, algo.cost_critic):
            net.dense = False
        assert algo.critic_blocks(8) == [slice(i, i + 1) for i in range(5)]
    ref = Reference(algo)
    collector = Collector(game, seed=0)
    for _ in range(2):
        rollout, _ = collector.collect(algo, 8)
        algo.wait()
        data = algo.advantages(rollout)                 # GAE is shared code with its own tests
        if algo.lagrange is not None:                   # advantages() reads λ; update() steps it first
            saved = copy.deepcopy(algo.lagrange), copy.deepcopy(algo.cost_tracker)
            algo.update_multipliers(rollout)
            data = algo.advantages(rollout)
            algo.lagrange, algo.cost_tracker = saved
        ref.update(rollout, data)
        algo.update(rollout)
    algo.wait()
    torch.testing.assert_close(algo.policy.flat.detach(), ref.policy_rows(), rtol=1e-4, atol=2e-5)
    torch.testing.assert_close(algo.critic.flat.detach(), torch.stack([_rows_of(c) for c in ref.critics]),
                               rtol=1e-4, atol=2e-5)
    if algo.cost_critic is not None:
        torch.testing.assert_close(algo.cost_critic.flat.detach(), torch.stack([_rows_of(c) for c in ref.cost_critics]),
                                   rtol=1e-4, atol=2e-5)
    # the update moved the parameters (a test that cannot fail would not)
    assert not torch.allclose(algo.policy.flat.detach(), Reference(cls(game.spec, cfg, seed=11)).policy_rows())
