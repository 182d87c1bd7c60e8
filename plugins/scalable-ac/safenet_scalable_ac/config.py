"""Defaults of Scalable Actor Critic (the ``algo.*`` config section)."""
from __future__ import annotations

from dataclasses import dataclass, field

from safenet.lagrange import LagrangeConfig
from safenet.validation import check_fields, param


@dataclass
class SACConfig:
    kappa: int = 1                  # truncation radius κ of the Q-functions (N_i^κ)
    gamma: float = 0.7              # discount γ
    # critic step size α_t = critic_h / (t + critic_t0), t = step inside the inner loop (Algorithm 1, line 6)
    critic_h: float = param(1.0, ge=0)               # 0: the critic does not learn
    critic_t0: float = param(1.0, gt=0)
    # "inner": t is the step inside the inner loop, as in Algorithm 1; "visits": t is the number of
    # earlier visits of the table entry (a running average per entry, floored at critic_min_step)
    critic_schedule: str = "visits"
    critic_min_step: float = param(0.0, ge=0, le=1)
    warm_start: bool = True         # keep Q̂ across outer iterations (the paper's suggested extension)
    # actor step size η_m = actor_lr / sqrt(m + 1) (Algorithm 1, line 12); decay "sqrt" or "none"
    actor_lr: float = param(5.0, gt=0)
    actor_decay: str = "sqrt"
    actor_decay_restart: int = param(100, ge=0)  # restart the η_m schedule every this many iterations (0: never)
    # variance reduction (the paper's §3.2 discussion), a baseline subtracted from agent i's weight
    # that does not depend on a_i, so the gradient stays unbiased: "none" (Eq. 7 as written),
    # "batch" (mean weight of the other copies at the same step), or "state" (a running average of
    # agent i's weight given its local state s_i, i.e. a local value estimate)
    baseline: str = "none"
    baseline_rate: float = param(0.05, gt=0, le=1)    # step size of the "state" baseline's running average
    lagrange: LagrangeConfig = field(default_factory=LagrangeConfig)

    def __post_init__(self) -> None:
        check_fields(self, "algo")
        if self.kappa < 0:
            raise ValueError(f"algo.kappa must be >= 0, got {self.kappa}")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"algo.gamma must be in [0, 1), got {self.gamma}")
        if self.actor_decay not in ("sqrt", "none"):
            raise ValueError(f"algo.actor_decay must be 'sqrt' or 'none', got {self.actor_decay!r}")
        if self.critic_schedule not in ("inner", "visits"):
            raise ValueError(f"algo.critic_schedule must be 'inner' or 'visits', got {self.critic_schedule!r}")
        if self.baseline not in ("none", "batch", "state"):
            raise ValueError(f"algo.baseline must be 'none', 'batch' or 'state', got {self.baseline!r}")
        if self.lagrange.method not in ("gradient", "pid"):
            raise ValueError(f"algo.lagrange.method must be 'gradient' or 'pid', got {self.lagrange.method!r}")
