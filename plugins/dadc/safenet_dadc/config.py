"""Defaults of DADC (the ``algo.*`` config section)."""
from __future__ import annotations

from dataclasses import dataclass, field

CHOICES = {
    "ais": ("rnn", "common_obs"),
    "ais_loss": ("nll", "mmd"),
    "prescription": ("deterministic", "gaussian"),
    "share_prescription": ("auto", "always", "never"),
    "execution": ("decentralized", "shared"),
    "update": ("ppo", "ac"),
    "actor_target": ("return", "q"),
    "lr_schedule": ("three_timescale", "constant"),
}


@dataclass
class DadcConfig:
    gamma: float = 0.9                 # discount (the paper's)
    episodes_per_update: int = 1       # whole episodes per game copy per iteration
    # -- state approximator (§5 item 1): linear+tanh, GRU -> AIS X_t; heads R̂_t and ν_{t+1}
    ais: str = "rnn"                   # "rnn" (learnt AIS) or "common_obs" (X_t = Z_t: the common obs is a state)
    ais_dim: int = 8                   # size of X_t (the paper uses 5)
    ais_hidden: int = 16               # width of the linear+tanh input layer and of the heads
    ais_loss: str = "nll"              # next-AIS loss: "nll" (Gaussian, identity covariance) or "mmd" (RBF kernel)
    ais_lambda: float = 0.5            # L_AIS = λ L_R + (1 - λ) L_ν
    mmd_bandwidth: float = 1.0         # RBF kernel bandwidth of the "mmd" loss
    ais_target_tau: float = 0.05       # Polyak rate of the target encoder giving the (stopped) next-AIS targets
    ais_epochs: int = 4                # full-batch AIS steps per update
    # -- critic Q(X, θ) (§5 item 2) and coordinator actor ψ(θ | X) (§5 item 3)
    hidden: list[int] = field(default_factory=lambda: [32])
    prescription: str = "deterministic"  # "deterministic": the coordinator picks one action per (agent, local
                                         # state); "gaussian": Gaussian logits, agents sample from their softmax
    joint_limit: int = 256             # deterministic: one categorical over all prescriptions when there are at
                                       # most this many, else a categorical per (agent, local state)
    share_prescription: str = "auto"   # one prescription for all agents: "auto" (when the game is exchangeable),
                                       # "always" or "never"
    init_log_std: float = 0.0          # gaussian prescriptions: initial log-std of the coordinator's policy
    update: str = "ppo"                # "ppo" (clipped surrogate, several epochs) or "ac" (one policy-gradient step)
    actor_target: str = "return"       # advantage = (TD(λ) return or Q(X_t, θ_t)) - E_ψ Q(X_t, ·)
    critic_lambda: float = 0.9         # λ of the TD(λ) critic targets
    baseline_samples: int = 8          # prescriptions sampled to estimate V(X) = E_ψ Q(X, θ)
    ppo_epochs: int = 4
    ppo_clip: float = 0.2
    minibatches: int = 4
    entropy_coef: float = 0.01
    max_grad_norm: float = 1.0         # per coordinator copy (copies never share a norm)
    # -- three timescales: AIS fastest, then critic, then actor
    lr_ais: float = 3e-2
    lr_critic: float = 1e-2
    lr_actor: float = 3e-3
    lr_schedule: str = "three_timescale"   # lr_x / (1 + k / lr_decay_updates)^e_x, e = (0.55, 0.75, 0.95)
    lr_decay_updates: float = 100.0
    # -- decentralized execution
    execution: str = "decentralized"   # "decentralized": each agent runs its own coordinator copy;
                                       # "shared": one copy computed once (same prescriptions, 1/n of the compute)
    common_seed: bool = True           # all copies seeded alike (false: a negative control, copies drift apart)

    def __post_init__(self) -> None:
        for key, choices in CHOICES.items():
            v = getattr(self, key)
            if v not in choices:
                raise ValueError(f"algo.{key} must be one of {', '.join(choices)}; got {v!r}")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"algo.gamma must be in [0, 1), got {self.gamma}")
        for key in ("episodes_per_update", "ais_dim", "ais_hidden", "ais_epochs", "baseline_samples", "ppo_epochs",
                    "minibatches", "joint_limit"):
            if getattr(self, key) < 1:
                raise ValueError(f"algo.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("ais_lambda", "ais_target_tau", "critic_lambda"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"algo.{key} must be in [0, 1], got {getattr(self, key)}")
        for key in ("lr_ais", "lr_critic", "lr_actor", "mmd_bandwidth", "lr_decay_updates"):
            if not getattr(self, key) > 0:
                raise ValueError(f"algo.{key} must be > 0, got {getattr(self, key)}")
        for key in ("ppo_clip", "entropy_coef", "max_grad_norm"):
            if getattr(self, key) < 0:
                raise ValueError(f"algo.{key} must be >= 0, got {getattr(self, key)}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"algo.hidden must be a non-empty list of positive sizes, got {list(self.hidden)}")
