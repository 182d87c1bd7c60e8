"""Registers the ``sac`` algorithm with safenet."""
from __future__ import annotations

import safenet
from safenet import AlgorithmSpec

from .config import SACConfig


@safenet.hookimpl
def safenet_algorithms() -> list[AlgorithmSpec]:
    return [AlgorithmSpec(
        name="sac",
        factory="safenet_scalable_ac.algorithm:ScalableActorCritic",
        config=SACConfig,
        summary="Scalable Actor Critic (Qu, Wierman & Li 2020): tabular truncated κ-hop Q + policy gradient, "
                "with a Lagrangian for cost limits",
        requires=frozenset({"finite", "discrete"}),
    )]
