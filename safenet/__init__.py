"""safenet: safe, networked, decentralized multi-agent reinforcement learning."""
from __future__ import annotations

from .errors import ConfigError, IncompatibleError, RegistryError, SafenetError
from .game import BatchedGame, GameSpec
from .graph import Graph
from .hookspecs import hookimpl
from .specs import AlgorithmSpec, EnvSpec

__version__ = "0.1.0"

__all__ = [
    "AlgorithmSpec", "BatchedGame", "ConfigError", "EnvSpec", "GameSpec", "Graph", "IncompatibleError",
    "RegistryError", "SafenetError", "hookimpl", "__version__",
]
