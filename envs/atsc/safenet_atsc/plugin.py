"""Registers the ATSC grid and its classic controllers with safenet (entry point ``safenet_atsc``).

Environments: ``atsc_grid_5x5`` and the family ``atsc_grid_<R>x<C>``. Algorithms that do not learn:
``fixed-time`` and ``max-pressure`` (they need the ``traffic_signals`` tag that only this game has).
Imports only the config module; SUMO is imported when a game is built.
"""
from __future__ import annotations

import safenet
from safenet.specs import AlgorithmSpec, EnvSpec

from .config import AtscConfig, FixedTimeConfig, MaxPressureConfig

TAGS = frozenset({"discrete", "constrained", "traffic_signals"})
#: Suggested settings: the per-step reward (minus halting vehicles at an intersection) reaches -100,
#: so learners scale it by 1/100 (``algo.*`` keys apply only to algorithms that have them); two SUMO
#: copies (one per core), evaluation of 2 episodes every 20 episodes' worth of steps.
OVERRIDES = {"algo": {"reward_scale": 0.01, "gamma": 0.99},
             "trainer": {"n_envs": 2, "total_steps": 144000, "eval_every_steps": 28800, "eval_episodes": 2}}
_SUMMARY = ("adaptive traffic-signal control on a {} grid of intersections (SUMO via libsumo): 5 phases per "
            "intersection, 5 s decisions, reward minus halting vehicles; cost per decision with a spilled-back lane")


@safenet.hookimpl
def safenet_environments() -> list[EnvSpec]:
    common = dict(factory="safenet_atsc.game:make", config=AtscConfig, tags=TAGS, overrides=OVERRIDES,
                  parallel_env="safenet_atsc.game:parallel_env")
    return [
        EnvSpec(name="atsc_grid_5x5", summary=_SUMMARY.format("5x5"), defaults={"rows": 5, "cols": 5}, **common),
        EnvSpec(name="atsc_grid", pattern=r"atsc_grid_(?P<rows>\d+)x(?P<cols>\d+)", summary=_SUMMARY.format("RxC"),
                **common),
    ]


@safenet.hookimpl
def safenet_algorithms() -> list[AlgorithmSpec]:
    needs = frozenset({"discrete", "traffic_signals"})
    return [
        AlgorithmSpec(name="fixed-time", factory="safenet_atsc.controllers:FixedTime", config=FixedTimeConfig,
                      summary="classic controller (does not learn): the network's static cyclic signal programme",
                      requires=needs),
        AlgorithmSpec(name="max-pressure", factory="safenet_atsc.controllers:MaxPressure", config=MaxPressureConfig,
                      summary="classic controller (does not learn): each decision the phase of largest pressure",
                      requires=needs),
    ]
