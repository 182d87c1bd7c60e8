"""Registers the PPO family with safenet: ``ippo``, ``mappo``, ``happo``, ``mappo-l``, ``dec-mappo-l``.

Only the config dataclasses are imported here; the algorithms (and torch) load when a run selects one.
"""
from __future__ import annotations

import safenet
from safenet import AlgorithmSpec

from .config import DecSafePPOConfig, PPOConfig, SafePPOConfig

_MODULE = "safenet_mappo_l.algorithm"
#: networks, optimiser state and updates run on trainer.device; acting uses a NumPy copy on the CPU
DEVICES = ("cpu", "cuda")


@safenet.hookimpl
def safenet_algorithms() -> list[AlgorithmSpec]:
    return [
        AlgorithmSpec(name="ippo", factory=f"{_MODULE}:IPPO", config=PPOConfig, devices=DEVICES,
                      summary="Independent PPO: per-agent policies and local critics, no constraints"),
        AlgorithmSpec(name="mappo", factory=f"{_MODULE}:MAPPO", config=PPOConfig, devices=DEVICES,
                      summary="MAPPO: per-agent policies, centralized critics, simultaneous updates, no constraints"),
        AlgorithmSpec(name="happo", factory=f"{_MODULE}:HAPPO", config=PPOConfig, devices=DEVICES,
                      summary="HAPPO: centralized critics, sequential updates in a random order with the "
                              "correction factor, no constraints"),
        AlgorithmSpec(name="mappo-l", factory=f"{_MODULE}:MAPPOL", config=SafePPOConfig, devices=DEVICES,
                      summary="MAPPO-L (Gu et al. 2023): HAPPO's sequential update with centralized reward/cost "
                              "critics and per-agent Lagrange multipliers"),
        AlgorithmSpec(name="dec-mappo-l", factory=f"{_MODULE}:DecMAPPOL", config=DecSafePPOConfig, devices=DEVICES,
                      summary="DEC-MAPPO-L: MAPPO-L with kappa-hop critics and correction factor; agents whose "
                              "kappa-hop neighbourhoods do not interact update together (algo.kappa)"),
    ]
