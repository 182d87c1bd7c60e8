"""Defaults of independent REINFORCE: the ``algo.*`` section of a run's config.

Every field here can be changed from the command line (``algo.lr=0.01``), a ``--config`` file or a
preset; omegaconf checks the type, and :meth:`ReinforceConfig.__post_init__` checks the values
before anything runs (a ``ValueError`` becomes a one-line config error naming the key).

This module imports only the standard library and safenet's light modules, so registering the
plugin stays cheap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from safenet.lagrange import LagrangeConfig


@dataclass
class ReinforceConfig:
    lr: float = 0.05                 # Adam step size of every agent's policy
    gamma: float = 0.9               # discount of the returns G_t
    hidden: List[int] = field(default_factory=list)   # hidden layer sizes; [] = linear softmax policy
    entropy_coef: float = 0.01       # bonus on the policy entropy (keeps early exploration)
    episodes_per_update: int = 4     # whole episodes collected per game copy between updates
    max_grad_norm: float = 1.0       # gradient clipping (0: none)
    normalize_returns: bool = True   # per-agent standardisation of G_t (a constant baseline)
    # cost constraints: reward r_i - sum_j λ_ij c_ij, λ_ij rising while agent i's episode cost
    # exceeds its limit (safenet.lagrange); algo.lagrange.enabled=false ignores costs
    lagrange: LagrangeConfig = field(default_factory=LagrangeConfig)

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"algo.lr must be positive, got {self.lr}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"algo.gamma must be in [0, 1], got {self.gamma}")
        if self.episodes_per_update < 1:
            raise ValueError(f"algo.episodes_per_update must be >= 1, got {self.episodes_per_update}")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"algo.hidden sizes must be positive, got {list(self.hidden)}")
        if self.lagrange.method not in ("gradient", "pid"):
            raise ValueError(f"algo.lagrange.method must be 'gradient' or 'pid', got {self.lagrange.method!r}")
