"""The ``algo.*`` config sections of ``dppo``, ``dmpo`` and ``cppo``.

Defaults are sized for the CACC platoons (γ = 0.99, per-vehicle rewards scaled by 1/100 and clipped
to ±5 through ``reward_scale``/``reward_clip``, which the CACC plugin suggests); every value can be
changed with ``algo.<key>=...``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from safenet.lagrange import LagrangeConfig
from safenet.validation import check_fields, param


def _off() -> LagrangeConfig:
    return LagrangeConfig(enabled=False)


@dataclass
class DPPOConfig:
    # κ-hop radii: the extended value function V_i(s_{N_i^κ}) and the advantage average (Eq. 4) use
    # `kappa`; the policy reads s_{N_i^{policy_kappa}}
    kappa: int = 2
    policy_kappa: int = 1
    # "neighbourhood": agent i's policy gradient uses the mean of its κ-hop neighbours' advantages
    # (Eq. 4 with the neighbours' rewards averaged too); "own": its own advantage only
    advantage: str = "neighbourhood"
    gamma: float = 0.99
    gae_lambda: float = 0.5
    reward_scale: float = 1.0        # r ← clip(reward_scale · r, ±reward_clip) before learning
    reward_clip: float = 0.0         # 0: no clipping
    lr_policy: float = param(3e-4, gt=0)
    lr_value: float = param(1e-3, gt=0)
    hidden: tuple[int, ...] = param((64, 64), min_items=1, item_ge=1, integer=True)
    clip: float = 0.2                # PPO ratio clip ε (Eq. 5 with the clipped surrogate)
    entropy_coef: float = param(0.01, ge=0)  # β of Eq. 5
    epochs: int = 10
    minibatches: int = 4
    target_kl: float = param(0.02, ge=0)  # stop the epochs of an update when the mean KL passes it (0: never)
    max_grad_norm: float = param(0.5, ge=0)
    normalize_obs: bool = True
    normalize_advantage: bool = True
    normalize_value: bool = True     # critics regress standardised targets (running mean/std per agent)
    # one policy, one critic (and one dmpo model) for all agents, on each agent's own inputs:
    # parameters O(1) in n, each network learns from n× the samples
    share_parameters: bool = False
    lagrange: LagrangeConfig = field(default_factory=_off)

    def __post_init__(self) -> None:
        check_fields(self, "algo")
        _check_common(self)


@dataclass
class CPPOConfig(DPPOConfig):
    # the critic reads the global state (GameSpec.state, or all observations when the game has no
    # state); each agent's policy gradient uses its own advantage
    advantage: str = "own"


@dataclass
class DMPOConfig(DPPOConfig):
    gae_lambda: float = 0.95
    model_kappa: int = 1             # the localized model reads s_{N_i^{model_kappa}} and a_i
    model_hidden: tuple[int, ...] = param((64, 64), min_items=1, item_ge=1, integer=True)
    lr_model: float = param(1e-3, gt=0)
    model_batch: int = 256
    model_steps: int = 100           # gradient steps per model fit
    model_every: int = 5             # refit the model every this many iterations (after warm-up)
    model_buffer: int = 20000        # real transitions (rows of n agents) kept in the env buffer D^E
    model_holdout: float = 0.1       # share of D^E held out to measure the model's error
    reward_weight: float = param(1.0, ge=0)      # loss = MSE(next state) + reward_weight·MSE(reward) + BCE(done) + MSE(cost)
    warmup_steps: int = param(6000, ge=0)  # real env steps before the model is first fitted and used
    warmup_model_steps: int = param(500, ge=0)  # gradient steps of that first fit (the 2024 paper's warm-up)
    rollout_length: int = 10         # branched model rollout length T
    branches: int = 128              # branched rollouts per model update, started from real states
    model_usage: float = 0.67        # q0: chance that an inner update trains on model data (else real)
    inner_updates: int = 3           # policy/value updates per iteration once the model is in use

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("model_steps", "model_every", "model_buffer", "model_batch", "rollout_length", "branches",
                    "inner_updates"):
            if getattr(self, key) < 1:
                raise ValueError(f"algo.{key} must be >= 1, got {getattr(self, key)}")
        if self.model_kappa < 0:
            raise ValueError(f"algo.model_kappa must be >= 0, got {self.model_kappa}")
        if not 0.0 <= self.model_usage <= 1.0:
            raise ValueError(f"algo.model_usage must be in [0, 1], got {self.model_usage}")
        if not 0.0 < self.model_holdout < 0.5:
            raise ValueError(f"algo.model_holdout must be in (0, 0.5), got {self.model_holdout}")


def _check_common(cfg: DPPOConfig) -> None:
    if cfg.kappa < 0 or cfg.policy_kappa < 0:
        raise ValueError(f"algo.kappa and algo.policy_kappa must be >= 0, got {cfg.kappa}, {cfg.policy_kappa}")
    if cfg.advantage not in ("neighbourhood", "own"):
        raise ValueError(f"algo.advantage must be 'neighbourhood' or 'own', got {cfg.advantage!r}")
    if not 0.0 <= cfg.gamma < 1.0:
        raise ValueError(f"algo.gamma must be in [0, 1), got {cfg.gamma}")
    if not 0.0 <= cfg.gae_lambda <= 1.0:
        raise ValueError(f"algo.gae_lambda must be in [0, 1], got {cfg.gae_lambda}")
    if cfg.reward_scale <= 0 or cfg.reward_clip < 0:
        raise ValueError(f"algo.reward_scale must be > 0 and algo.reward_clip >= 0, got "
                         f"{cfg.reward_scale}, {cfg.reward_clip}")
    for key in ("epochs", "minibatches"):
        if getattr(cfg, key) < 1:
            raise ValueError(f"algo.{key} must be >= 1, got {getattr(cfg, key)}")
    if not 0.0 < cfg.clip < 1.0:
        raise ValueError(f"algo.clip must be in (0, 1), got {cfg.clip}")
    if cfg.lagrange.method not in ("gradient", "pid"):
        raise ValueError(f"algo.lagrange.method must be 'gradient' or 'pid', got {cfg.lagrange.method!r}")
