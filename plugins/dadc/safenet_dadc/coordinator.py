"""One agent's virtual coordinator: state approximator, critic and actor (DADC §5), on its own tensors.

:class:`~safenet_dadc.algorithm.Dadc` gives every agent its own :class:`Coordinator` (or one shared
by all, ``execution=shared``). A coordinator computes only on its own tensors, with its own torch
generator for every random draw, so coordinators built from the same seed and fed the same common
information stay bit-identical: same shapes, same operations, same order (single-threaded CPU).
Tensors keep a copy axis of size 1 (``[..., 1, features]``) for the per-copy layers of
:mod:`safenet_dadc.networks`.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from safenet.ppo import clipped_surrogate
from safenet.rollout import gae

from .config import DadcConfig
from .networks import AisEncoder, clip_grad_per_copy, init_copies, mlp, per_copy
from .prescriptions import PrescriptionSpace

#: learning-rate decay exponents of the three timescales (AIS, critic, actor): Σ a_k = ∞, Σ a_k² < ∞,
#: b_k / a_k → 0 and c_k / b_k → 0
TIMESCALE_EXPONENTS = {"ais": 0.55, "critic": 0.75, "actor": 0.95}


class LogStd(nn.Module):
    def __init__(self, copies: int, dim: int, init: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.full((copies, dim), float(init)))


class Coordinator:
    """The three components of one coordinator copy and their optimisers (three learning rates)."""

    def __init__(self, cfg: DadcConfig, space: PrescriptionSpace, common_obs_dim: int, seed: int) -> None:
        self.cfg, self.space, self.C = cfg, space, 1
        zd, Fd = common_obs_dim, space.feature_dim
        self.rnn = cfg.ais == "rnn"
        d = self.ais_dim = cfg.ais_dim if self.rnn else zd
        seeds = lambda offset: [int(seed) + offset]                                     # noqa: E731
        self.ais_modules: list[nn.Module] = []
        if self.rnn:
            self.encoder = init_copies(lambda c: AisEncoder(c, zd + Fd, cfg.ais_hidden, d), seeds(1))
            self.reward_head = init_copies(lambda c: mlp(c, d + Fd, [cfg.ais_hidden], 1), seeds(2))
            self.next_head = init_copies(lambda c: mlp(c, d + Fd, [cfg.ais_hidden], d), seeds(3))
            self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
            self.ais_modules = [self.encoder, self.reward_head, self.next_head]
        self.critic = init_copies(lambda c: mlp(c, d + Fd, cfg.hidden, 1), seeds(4))
        self.actor = init_copies(lambda c: mlp(c, d, cfg.hidden, space.actor_out, out_gain=0.01), seeds(5))
        self.log_std = (init_copies(lambda c: LogStd(c, space.actor_out, cfg.init_log_std), seeds(6))
                        if space.kind == "gaussian" else None)
        self.actor_modules = [self.actor] + ([self.log_std] if self.log_std is not None else [])
        self.optims = {
            "critic": torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_critic),
            "actor": torch.optim.Adam([p for m in self.actor_modules for p in m.parameters()], lr=cfg.lr_actor),
        }
        if self.rnn:
            self.optims["ais"] = torch.optim.Adam([p for m in self.ais_modules for p in m.parameters()], lr=cfg.lr_ais)
        self.base_lr = {"ais": cfg.lr_ais, "critic": cfg.lr_critic, "actor": cfg.lr_actor}
        self.gens = [torch.Generator().manual_seed(int(seed))]      # every random draw of this coordinator
        self.updates = 0

    # -- helpers --------------------------------------------------------------------------------
    def _log_std(self) -> torch.Tensor | None:
        return None if self.log_std is None else self.log_std.value

    def _noise(self, lead: tuple[int, ...]) -> torch.Tensor:
        """This coordinator's draws from its own generator: ``[*lead, 1, noise_dim]``."""
        s = self.space
        draw = torch.randn if s.gaussian_noise else torch.rand
        return torch.stack([draw((*lead, s.noise_dim), generator=g) for g in self.gens], dim=len(lead))

    def modules(self) -> list[nn.Module]:
        return [*self.ais_modules, self.critic, *self.actor_modules]

    # -- acting ---------------------------------------------------------------------------------
    def act(self, z: torch.Tensor, h: torch.Tensor, prev: torch.Tensor, start: np.ndarray,
            deterministic: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z[B, zd]`` common obs, recurrent state ``h[B, 1, d]`` and previous prescription features
        ``prev[B, 1, F]`` (reset where ``start``) -> ``(θ[B, 1, p], log ψ(θ)[B, 1], h', φ(θ))``."""
        B = z.shape[0]
        mask = torch.as_tensor(~start, dtype=torch.float32)[:, None, None]
        with torch.no_grad():
            zc = z[:, None, :]
            if self.rnn:
                x = h = self.encoder.step(torch.cat([zc, prev * mask], -1), h * mask)
            else:
                x = zc
            out = self.actor(x)
            theta = self.space.sample(out, self._log_std(), None if deterministic else self._noise((B,)))
            logp = self.space.log_prob(out, self._log_std(), theta)
            return theta, logp, h, self.space.features(theta)

    # -- learning -------------------------------------------------------------------------------
    def _set_learning_rates(self) -> dict[str, float]:
        out = {}
        for name, opt in self.optims.items():
            lr = self.base_lr[name]
            if self.cfg.lr_schedule == "three_timescale":
                lr = lr / (1.0 + self.updates / self.cfg.lr_decay_updates) ** TIMESCALE_EXPONENTS[name]
            for g in opt.param_groups:
                g["lr"] = lr
            out[f"train/lr_{name}"] = lr
        return out

    def _step(self, name: str, loss: torch.Tensor, modules: list[nn.Module]) -> float:
        opt = self.optims[name]
        opt.zero_grad()
        loss.backward()
        norm = clip_grad_per_copy([p for m in modules for p in m.parameters()], self.cfg.max_grad_norm)
        opt.step()
        return float(norm.max())

    def _next_ais_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        sq = (pred - target).pow(2).sum(-1)
        if self.cfg.ais_loss == "nll":       # -log N(target; pred, I) without the constant
            return 0.5 * sq
        h2 = self.cfg.mmd_bandwidth ** 2     # MMD² between δ_pred and δ_target, RBF kernel
        return 2.0 - 2.0 * torch.exp(-sq / (2.0 * h2))

    def ais_losses(self, inputs: torch.Tensor, phi: torch.Tensor, reward: torch.Tensor, start: torch.Tensor,
                   done: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(L_AIS, L_R, L_ν)``, each the sum over copies of the copy's mean (Eq. 4)."""
        lam = self.cfg.ais_lambda
        X = self.encoder.unroll(inputs, start)
        with torch.no_grad():
            X_target = self.target_encoder.unroll(inputs, start)
        xp = torch.cat([X, phi], -1)
        loss_r = F.smooth_l1_loss(self.reward_head(xp).squeeze(-1), reward, reduction="none").mean((0, 1)).sum()
        valid = (~done[:-1]).to(X.dtype)[..., None]                                       # [T-1, B, 1]
        nu = self._next_ais_loss(self.next_head(xp)[:-1], X_target[1:])                  # [T-1, B, C]
        loss_nu = ((nu * valid).sum((0, 1)) / valid.sum().clamp(min=1.0)).sum()
        return lam * loss_r + (1.0 - lam) * loss_nu, loss_r, loss_nu

    def update(self, theta: torch.Tensor, logp_old: torch.Tensor, reward_np: np.ndarray, common_obs: np.ndarray,
               start: torch.Tensor, done_np: np.ndarray) -> dict[str, float]:
        """One update from whole episodes, all as this coordinator's agent stored them: ``theta[T, B, 1, p]``,
        ``logp_old[T, B, 1]``, ``reward_np[T, B, 1]``, ``common_obs[T, B, zd]``, ``start``/``done_np`` ``[T, B]``."""
        cfg, space, C = self.cfg, self.space, self.C
        metrics = self._set_learning_rates()
        done = torch.as_tensor(done_np)
        reward = torch.as_tensor(reward_np, dtype=torch.float32)
        T, B = reward.shape[:2]
        z = torch.as_tensor(common_obs, dtype=torch.float32)[:, :, None, :].expand(T, B, C, -1)
        phi = space.features(theta)                                                      # [T, B, C, F]
        prev = torch.cat([torch.zeros_like(phi[:1]), phi[:-1]]) * (~start).to(phi.dtype)[..., None, None]

        # 1. state approximator (fastest timescale)
        if self.rnn:
            inputs = torch.cat([z, prev], -1)
            for _ in range(cfg.ais_epochs):
                loss, loss_r, loss_nu = self.ais_losses(inputs, phi, reward, start, done)
                metrics["train/grad_norm_ais"] = self._step("ais", loss, self.ais_modules)
            metrics.update({"train/loss_ais": loss.item(), "train/loss_reward": loss_r.item(),
                            "train/loss_next_ais": loss_nu.item()})
            with torch.no_grad():
                for p, tp in zip(self.encoder.parameters(), self.target_encoder.parameters()):
                    tp.lerp_(p, cfg.ais_target_tau)
                X = self.encoder.unroll(inputs, start)
        else:
            X = z
        X = X.detach()

        # 2. critic targets and advantages
        with torch.no_grad():
            q_old = self.critic(torch.cat([X, phi], -1)).squeeze(-1)                     # [T, B, C]
            q_np = q_old.double().numpy()
            next_q = np.concatenate([q_np[1:], np.zeros_like(q_np[:1])])
            # truncation is treated as the end (γ^T is negligible for the episode lengths used)
            adv_ret, target = gae(reward_np, q_np, next_q, done_np, done_np, cfg.gamma, cfg.critic_lambda)
            out = self.actor(X)
            M = cfg.baseline_samples
            samples = space.sample(out.expand(M, *out.shape), self._log_std(), self._noise((M, T, B)))
            q_samples = self.critic(torch.cat([X.expand(M, *X.shape), space.features(samples)], -1)).squeeze(-1)
            v = sum(q_samples[m] for m in range(M)) / M                           # E_ψ Q(X, ·), [T, B, C]
            base = torch.as_tensor(target, dtype=torch.float32) if cfg.actor_target == "return" else q_old
            adv = base - v
            adv = (adv - per_copy(torch.mean, adv)) / (per_copy(torch.std, adv) + 1e-8)
            target_t = torch.as_tensor(target, dtype=torch.float32)

        # 3. critic (middle timescale) and actor (slowest), on minibatches of (t, b) samples
        N = T * B
        flat = lambda x: x.reshape(N, C, *x.shape[3:])                                   # noqa: E731
        Xf, phif, thf, lpf, advf, tgf = map(flat, (X, phi, theta, logp_old, adv, target_t))
        epochs, parts = (cfg.ppo_epochs, cfg.minibatches) if cfg.update == "ppo" else (1, 1)
        cols = torch.arange(C)
        for _ in range(epochs):
            perms = torch.stack([torch.randperm(N, generator=g) for g in self.gens], dim=1)   # [N, C]: each copy's order
            for idx in torch.tensor_split(perms, parts):
                pick = lambda x: x[idx, cols]                                             # noqa: E731
                x, ph, th, lp, a, tg = map(pick, (Xf, phif, thf, lpf, advf, tgf))
                q = self.critic(torch.cat([x, ph], -1)).squeeze(-1)
                loss_q = F.smooth_l1_loss(q, tg, reduction="none").mean(0).sum()
                metrics["train/grad_norm_critic"] = self._step("critic", loss_q, [self.critic])
                o = self.actor(x)
                logp = space.log_prob(o, self._log_std(), th)
                ent = space.entropy(o, self._log_std())
                if cfg.update == "ppo":
                    obj = clipped_surrogate(logp, lp, a, cfg.ppo_clip)
                else:
                    obj = logp * a
                loss_pi = -(obj + cfg.entropy_coef * ent).mean(0).sum()
                metrics["train/grad_norm_actor"] = self._step("actor", loss_pi, self.actor_modules)
        self.updates += 1
        metrics.update({"train/loss_critic": loss_q.item() / C, "train/loss_actor": loss_pi.item() / C,
                        "train/entropy": ent.detach().mean().item(), "train/q_mean": q_old.mean().item()})
        return metrics

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {f"module_{i}": m.state_dict() for i, m in enumerate(self.modules())}
        if self.rnn:
            state["target_encoder"] = self.target_encoder.state_dict()
        state["optims"] = {k: o.state_dict() for k, o in self.optims.items()}
        state["gen"] = self.gens[0].get_state()
        state["updates"] = self.updates
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, m in enumerate(self.modules()):
            m.load_state_dict(state[f"module_{i}"])
        if self.rnn:
            self.target_encoder.load_state_dict(state["target_encoder"])
        for k, o in self.optims.items():
            o.load_state_dict(state["optims"][k])
        self.gens[0].set_state(state["gen"])
        self.updates = int(state["updates"])
