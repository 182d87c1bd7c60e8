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
        # SAC learns stochastic localized policies (randomising is how users share access points),
        # so evaluation samples them, as the paper's evaluation does
        overrides={"trainer": {"eval_deterministic": False}},
    )]
