"""CACC platoon control for safenet: ``cacc_catchup`` and ``cacc_slowdown`` (Chu et al., ICLR 2020)."""
from __future__ import annotations

from .cacc import (ACTION_GAINS, DEFAULT_COST_LIMIT, CaccConfig, CaccGame, make, optimal_velocity,
                   parallel_env)

__version__ = "0.1.0"

__all__ = ["ACTION_GAINS", "DEFAULT_COST_LIMIT", "CaccConfig", "CaccGame", "make", "optimal_velocity",
           "parallel_env", "__version__"]
