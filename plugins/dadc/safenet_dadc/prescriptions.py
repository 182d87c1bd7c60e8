"""Prescriptions: the coordinator's "actions", maps from an agent's local state to its action.

A prescription ``θ = (θ^k)`` holds, for each prescription *block* ``k`` (one per agent, or a single
block every agent uses when prescriptions are shared), a row per local state ``ℓ``. The
coordinator's policy ``ψ(θ | X)`` takes one of three forms:

* ``joint`` (deterministic prescriptions, few of them): a categorical over every deterministic
  prescription (every choice of one action per (block, local state)); ``θ`` is its index. Like the
  paper's 3-way categorical on multi-access broadcast, any prescription is one step away from any
  other, so a policy that must change two agents' rules at once is not stuck between them;
* ``factorised`` (deterministic prescriptions, too many to list): an independent categorical per
  (block, local state); ``θ`` is the action index of each;
* ``gaussian`` (randomised prescriptions): a diagonal Gaussian over per-(block, local state) action
  logits (the paper's PPO on demand response); agent ``k`` samples its action from
  ``softmax(θ^k[ℓ])`` with its private randomness.

Networks see a prescription through :meth:`PrescriptionSpace.features`: each (block, local state)'s
action distribution (one-hot for deterministic prescriptions), ``[..., blocks * L * A]``.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from safenet.errors import IncompatibleError
from safenet.game import GameSpec

from .networks import broadcast_per_copy


class PrescriptionSpace:
    def __init__(self, spec: GameSpec, prescription: str, shared: bool, joint_limit: int = 256) -> None:
        if spec.n_local_states is None:
            raise IncompatibleError(f"dadc needs finite local states; {spec.name!r} declares no n_local_states")
        n = spec.n
        self.shared, self.n = shared, n
        self.L, self.A = max(spec.n_local_states), spec.action_dim
        if shared and (len(set(spec.n_local_states)) > 1 or len(set(spec.action_dims)) > 1):
            raise IncompatibleError(f"algo.share_prescription: the agents of {spec.name!r} differ in local states "
                                    f"or actions, so one prescription cannot serve all; use 'never'")
        self.blocks = P = 1 if shared else n
        rows = [0] if shared else list(range(n))
        amask = np.zeros((P, self.L, self.A), dtype=bool)
        lmask = np.zeros((P, self.L), dtype=bool)
        for k, i in enumerate(rows):
            amask[k, : spec.n_local_states[i], : spec.action_dims[i]] = True
            lmask[k, : spec.n_local_states[i]] = True
        self.action_mask = torch.as_tensor(amask)                   # [P, L, A]
        self.state_mask = torch.as_tensor(lmask)                    # [P, L]
        self.block_of_agent = np.zeros(n, dtype=np.int64) if shared else np.arange(n)
        self.feature_dim = P * self.L * self.A
        n_joint = float(np.prod([float(amask[k, l].sum()) for k in range(P) for l in range(self.L) if lmask[k, l]]))
        if prescription == "gaussian":
            self.kind = "gaussian"
        else:
            self.kind = "joint" if n_joint <= joint_limit else "factorised"
        if self.kind == "joint":
            cells = [(k, l) for k in range(P) for l in range(self.L) if lmask[k, l]]
            table = np.zeros((int(n_joint), P, self.L), dtype=np.int64)
            for j, combo in enumerate(itertools.product(*[range(int(amask[k, l].sum())) for k, l in cells])):
                for (k, l), a in zip(cells, combo):
                    table[j, k, l] = a
            self.table = torch.as_tensor(table)                      # [J, P, L]: joint index -> actions
        #: size of the raw θ an agent stores, of the actor's output, and of one draw of the policy's noise
        self.param_dim = {"joint": 1, "factorised": P * self.L, "gaussian": P * self.L * self.A}[self.kind]
        self.actor_out = int(n_joint) if self.kind == "joint" else P * self.L * self.A
        self.noise_dim = self.actor_out
        self.gaussian_noise = self.kind == "gaussian"

    # -- the coordinator's policy ψ(θ | X) ---------------------------------------------------------
    def _logits(self, out: torch.Tensor) -> torch.Tensor:
        if self.kind == "joint":
            return out
        x = out.reshape(*out.shape[:-1], self.blocks, self.L, self.A)
        return x.masked_fill(~self.action_mask, -1e9)

    def sample(self, out: torch.Tensor, log_std: torch.Tensor | None, noise: torch.Tensor | None) -> torch.Tensor:
        """θ from the actor's output ``out[..., actor_out]`` and ``noise[..., noise_dim]`` (uniform for the
        categoricals, by Gumbel-max; standard normal for gaussian); ``noise=None`` gives the mode."""
        if self.kind == "gaussian":
            return out if noise is None else out + broadcast_per_copy(log_std, out).exp() * noise
        logits = self._logits(out)
        if noise is not None:
            gumbel = -torch.log(-torch.log(noise.clamp(1e-12, 1.0 - 1e-7)))
            logits = logits + gumbel.reshape(logits.shape)
        return logits.argmax(-1).to(out.dtype).reshape(*out.shape[:-1], self.param_dim)

    def log_prob(self, out: torch.Tensor, log_std: torch.Tensor | None, theta: torch.Tensor) -> torch.Tensor:
        if self.kind == "gaussian":
            dist = torch.distributions.Normal(out, broadcast_per_copy(log_std, out).exp())
            return (dist.log_prob(theta) * self.action_mask.reshape(-1).to(out.dtype)).sum(-1)
        logp = torch.log_softmax(self._logits(out), -1)
        if self.kind == "joint":
            return logp.gather(-1, theta.long()).squeeze(-1)
        idx = theta.reshape(*theta.shape[:-1], self.blocks, self.L, 1).long()
        return (logp.gather(-1, idx).squeeze(-1) * self.state_mask).sum((-1, -2))

    def entropy(self, out: torch.Tensor, log_std: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "gaussian":
            ent = 0.5 + 0.5 * np.log(2 * np.pi) + broadcast_per_copy(log_std, out)
            return (ent * self.action_mask.reshape(-1).to(out.dtype)).sum(-1)
        logp = torch.log_softmax(self._logits(out), -1)
        ent = -(logp.exp() * logp).sum(-1)
        return ent if self.kind == "joint" else (ent * self.state_mask).sum((-1, -2))

    # -- what networks and agents read ----------------------------------------------------------
    def action_probs(self, theta: torch.Tensor) -> torch.Tensor:
        """``[..., P, L, A]``: each (block, local state)'s action distribution under prescription θ."""
        if self.kind == "gaussian":
            logits = theta.reshape(*theta.shape[:-1], self.blocks, self.L, self.A).masked_fill(~self.action_mask, -1e9)
            return torch.softmax(logits, -1)
        if self.kind == "joint":
            idx = self.table[theta.long().squeeze(-1)]                                    # [..., P, L]
        else:
            idx = theta.reshape(*theta.shape[:-1], self.blocks, self.L).long()
        return torch.nn.functional.one_hot(idx, self.A).to(theta.dtype) * self.action_mask

    def features(self, theta: torch.Tensor) -> torch.Tensor:
        probs = self.action_probs(theta)
        return probs.reshape(*probs.shape[:-3], self.feature_dim)

    def agent_actions(self, theta: np.ndarray, local_state: np.ndarray, copy_of_agent: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
        """Agent ``k`` applies its own component of the prescription of its coordinator copy to its own local
        state. ``theta[B, C, param_dim]``, ``local_state[B, n]`` -> actions ``[B, n]``."""
        B, n = local_state.shape
        probs = self.action_probs(torch.as_tensor(theta)).numpy()                        # [B, C, P, L, A]
        mine = probs[np.arange(B)[:, None], copy_of_agent[None, :], self.block_of_agent[None, :], local_state]
        if self.kind != "gaussian":
            return mine.argmax(-1).astype(np.int64)
        u = rng.random((B, n, 1))                                                          # private draws
        return np.minimum((mine.cumsum(-1) < u).sum(-1), self.A - 1).astype(np.int64)
