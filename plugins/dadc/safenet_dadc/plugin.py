"""Registers the ``dadc`` algorithm with safenet."""
from __future__ import annotations

import safenet
from safenet import AlgorithmSpec

from .config import DadcConfig


@safenet.hookimpl
def safenet_algorithms() -> list[AlgorithmSpec]:
    return [AlgorithmSpec(
        name="dadc",
        factory="safenet_dadc.algorithm:Dadc",
        config=DadcConfig,
        summary="DADC: every agent runs an identical coordinator (AIS of the common information, critic on "
                "(AIS, prescription), actor over prescriptions), seeded alike so all sample the same prescription",
        requires=frozenset({"common_obs", "finite", "discrete"}),
        # the default budget reaches the optimum of multi_access_broadcast (about 3 CPU-minutes)
        overrides={"trainer": {"n_envs": 16, "total_steps": 480_000, "eval_every_steps": 48_000,
                               "eval_episodes": 200}},
    )]
