"""The module the entry point names: it tells safenet what this distribution provides.

safenet imports it when it builds its plugin manager (every ``safenet`` command), so it must be
quick and must not import the algorithm: the factory is an import string, resolved only when a
run selects ``independent-reinforce``.
"""
from __future__ import annotations

import safenet
from safenet import AlgorithmSpec

from .config import ReinforceConfig


@safenet.hookimpl
def safenet_algorithms() -> list[AlgorithmSpec]:
    return [AlgorithmSpec(
        name="independent-reinforce",
        factory="safenet_template.algorithm:IndependentReinforce",
        config=ReinforceConfig,
        summary="Independent REINFORCE: one softmax policy per agent on its own observation, "
                "Lagrangian cost penalty; no communication",
        # the registry refuses envs without these tags before building anything
        requires=frozenset({"discrete"}),
    )]
