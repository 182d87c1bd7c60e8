"""DADC: decentralized actor, decentralized critic over the common information (Mahajan et al., §5).

Every agent runs its own copy of a *virtual coordinator* that sees only the common information
``Z_t`` (``info["common_obs"]``) and the common team reward, and picks a prescription
``θ_t = (θ_t^k)``: for each agent a map from its local state to an action (see
:mod:`safenet_dadc.prescriptions`). Agent ``k`` applies its own component to its own local state.
A copy has three parts, trained on three timescales (AIS fastest, then critic, then actor):

1. **state approximator** (Eq. 4): ``X_t = GRU(tanh(W [Z_t, φ(θ_{t-1})]), X_{t-1})``, with heads
   ``R̂_t(X_t, θ_t)`` (smooth-L1 loss ``L_R``) and ``ν_{t+1}(X_t, θ_t)``, a Gaussian with identity
   covariance over the next AIS (``L_ν`` = its negative log-likelihood of ``X_{t+1}``, or an MMD).
   The next-AIS target comes from a Polyak-averaged target encoder, gradient stopped, so the AIS
   cannot collapse onto its own prediction. ``L_AIS = λ L_R + (1 - λ) L_ν``.
2. **critic** ``Q(X_t, θ_t)`` (Eq. 5) by batch TD(λ) with the smooth-L1 loss, on detached ``X_t``.
3. **actor** ``ψ(θ_t | X_t)`` (Eq. 6) by policy gradient with advantage
   ``(G^λ_t or Q(X_t, θ_t)) - E_{θ ~ ψ} Q(X_t, θ)`` (the expectation by sampling), as one
   actor-critic step (``update=ac``) or PPO's clipped surrogate over epochs (``update=ppo``).

**Decentralized execution.** With ``execution=decentralized`` every agent runs its own
:class:`~safenet_dadc.coordinator.Coordinator`, computing on its own tensors with its own torch
generator for all its random draws (prescription sampling, baseline samples, minibatch order);
``common_seed`` gives every copy the same seed, so, seeing the same common information and rewards,
all copies stay bit-identical and sample the same prescription without communicating (agent ``k``
learns from what agent ``k`` stored). ``train/copy_divergence`` logs the largest parameter
difference between the copies; ``execution=shared`` runs one coordinator and gives its prescription
to every agent (the same prescriptions at ``1/n`` of the compute). Agents' own action draws under
randomised prescriptions are private.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from safenet.algorithm import Algorithm
from safenet.errors import ConfigError, IncompatibleError, SafenetError
from safenet.game import GameSpec
from safenet.rollout import Rollout

from .config import DadcConfig
from .coordinator import Coordinator
from .prescriptions import PrescriptionSpace


class _Execution:
    """Per batch size: each copy's recurrent state during collection."""

    def __init__(self, B: int, C: int, ais_dim: int, features: int) -> None:
        self.h = [torch.zeros(B, 1, ais_dim) for _ in range(C)]
        self.prev = [torch.zeros(B, 1, features) for _ in range(C)]
        self.t = np.zeros(B, dtype=np.int64)


class Dadc(Algorithm):
    needs_whole_episodes = True

    def __init__(self, spec: GameSpec, cfg: DadcConfig, *, seed: int = 0, device: str = "cpu") -> None:
        super().__init__(spec, cfg, seed=seed, device=device)
        if not spec.common_obs_dim:
            raise IncompatibleError(f"dadc needs common information; {spec.name!r} has no common_obs_dim")
        if spec.action_kind != "discrete":
            raise IncompatibleError(f"dadc needs discrete actions; {spec.name!r} has {spec.action_kind} actions")
        if str(device) != "cpu":        # its networks are tiny and act once per step of every copy
            raise ConfigError(f"trainer.device={str(device)!r}: algorithm 'dadc' runs on cpu only; set trainer.device=cpu")
        n = spec.n
        self.rollout_steps = spec.episode_length * cfg.episodes_per_update
        shared = cfg.share_prescription == "always" or (cfg.share_prescription == "auto" and "exchangeable" in spec.tags)
        self.space = PrescriptionSpace(spec, cfg.prescription, shared, cfg.joint_limit)
        self.C = C = n if cfg.execution == "decentralized" else 1
        self.copy_of_agent = np.arange(n) if C == n else np.zeros(n, dtype=np.int64)
        seeds = [int(seed)] * C if cfg.common_seed else [int(seed) + 7919 * c for c in range(C)]
        self.coordinators = [Coordinator(cfg, self.space, spec.common_obs_dim, s) for s in seeds]
        self.ais_dim = self.coordinators[0].ais_dim
        self.private_rng = np.random.default_rng([int(seed), 99])       # agents' private action draws
        self._exec: dict[int, _Execution] = {}

    def copy_divergence(self) -> float:
        """Largest ``|parameter of copy c - parameter of copy 0|`` (0.0: all copies identical)."""
        first = [p for m in self.coordinators[0].modules() for p in m.parameters()]
        worst = 0.0
        with torch.no_grad():
            for coord in self.coordinators[1:]:
                for p0, p in zip(first, (p for m in coord.modules() for p in m.parameters())):
                    worst = max(worst, float((p - p0).abs().max()))
        return worst

    # -- acting ---------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, info: dict, deterministic: bool = False) -> tuple[np.ndarray, dict]:
        if "common_obs" not in info or "local_state" not in info:
            raise SafenetError(f"dadc: {self.spec.name!r} must put common_obs and local_state in every info")
        z = torch.as_tensor(np.asarray(info["common_obs"]), dtype=torch.float32)
        B = z.shape[0]
        st = self._exec.get(B)
        if st is None:
            st = self._exec[B] = _Execution(B, self.C, self.ais_dim, self.space.feature_dim)
        if "episode_step" in info:
            start = np.asarray(info["episode_step"]) == 0
        else:   # without it, count steps: exact for games whose episodes all last episode_length steps
            start = st.t % self.spec.episode_length == 0
        st.t = np.where(start, 0, st.t) + 1
        thetas, logps = [], []
        for c, coord in enumerate(self.coordinators):       # each agent's own coordinator, on the common obs only
            theta, logp, st.h[c], st.prev[c] = coord.act(z, st.h[c], st.prev[c], start, deterministic)
            thetas.append(theta)
            logps.append(logp)
        theta, logp = torch.cat(thetas, 1).numpy(), torch.cat(logps, 1).numpy()        # [B, C, p], [B, C]
        actions = self.space.agent_actions(theta, np.asarray(info["local_state"]), self.copy_of_agent, self.private_rng)
        c = self.copy_of_agent
        extras = {"theta": theta[:, c], "logp": logp[:, c],
                  "start": np.repeat(start[:, None], self.spec.n, axis=1).astype(np.float32)}
        return actions, extras

    # -- learning -------------------------------------------------------------------------------
    def update(self, rollout: Rollout) -> dict[str, float]:
        ex = rollout.extras
        start = torch.as_tensor(ex["start"][:, :, 0] > 0.5)                              # [T, B]
        if not bool(start[0].all()):
            raise SafenetError("dadc learns from whole episodes: every rollout must begin where episodes begin "
                               "(keep trainer.rollout_steps a multiple of the episode length, or 0)")
        metrics: dict[str, float] = {}
        for c, coord in enumerate(self.coordinators):       # copy c learns from what agent c stored
            m = coord.update(torch.as_tensor(ex["theta"][:, :, c:c + 1], dtype=torch.float32),
                             torch.as_tensor(ex["logp"][:, :, c:c + 1], dtype=torch.float32),
                             rollout.reward[:, :, c:c + 1].astype(np.float64), rollout.infos["common_obs"],
                             start, rollout.done)
            if c == 0:
                metrics = m
        metrics["train/copy_divergence"] = self.copy_divergence()
        return metrics

    # -- bookkeeping ----------------------------------------------------------------------------
    def communication(self) -> dict[str, float]:
        # agents read only the common information the game broadcasts and their own local state
        return {"floats_per_step": 0.0, "floats_per_update": 0.0}

    def state_dict(self) -> dict[str, Any]:
        return {"coordinators": [c.state_dict() for c in self.coordinators],
                "private_rng": json.dumps(self.private_rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for c, s in zip(self.coordinators, state["coordinators"]):
            c.load_state_dict(s)
        self.private_rng.bit_generator.state = json.loads(state["private_rng"])
        self._exec.clear()
