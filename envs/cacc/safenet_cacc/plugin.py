"""Registers the CACC environments with safenet (entry point ``safenet_cacc`` in group ``safenet``).

Two names, one game: ``cacc_catchup`` and ``cacc_slowdown`` differ only in ``env.scenario``; the sized
family ``cacc_<scenario>_<N>`` (e.g. ``cacc_catchup_1024``) sets the platoon length ``env.n_vehicles``.
"""
from __future__ import annotations

from typing import Any

import safenet
from safenet.specs import EnvSpec

FACTORY = "safenet_cacc.cacc:make"
PARALLEL_ENV = "safenet_cacc.cacc:parallel_env"
#: Tags every CACC game has (listed so the registry can check algorithm requirements without building it).
TAGS = frozenset({"discrete", "global_state", "constrained"})
#: Suggested settings (``algo.*`` ones apply only to algorithms that have the key): the raw rewards
#: reach -10^3 per vehicle and step, so learners scale them by 1/100 and clip to ±5, as the DMPO
#: copy of this environment does; γ = 0.99 over the 600-step episodes.
OVERRIDES = {"algo": {"reward_scale": 0.01, "reward_clip": 5.0, "gamma": 0.99},
             "trainer": {"total_steps": 240000, "eval_every_steps": 24000}}

_NAMED: dict[str, dict[str, Any]] = {
    "cacc_catchup": {"scenario": "catchup"},
    "cacc_slowdown": {"scenario": "slowdown"},
}
#: Named groups set the env config keys ``scenario`` and ``n_vehicles``.
NAME_PATTERN = r"cacc_(?P<scenario>catchup|slowdown)_(?P<n_vehicles>\d+)"
_SUMMARY = {
    "cacc_catchup": "CACC platoon (8 vehicles, OVM gains as actions), catch-up: the first vehicle starts "
                    "30-50 m behind the leader; cost per step with headway < 10 m",
    "cacc_slowdown": "CACC platoon (8 vehicles, OVM gains as actions), slow-down: the leader brakes from "
                     "22.5-37.5 m/s to 15 m/s over 30 s; cost per step with headway < 10 m",
}


def environments() -> list[dict[str, Any]]:
    """The registered names: ``{"name", "factory", "summary", "defaults"}`` each."""
    return [{"name": name, "factory": FACTORY, "summary": _SUMMARY[name], "defaults": dict(d)}
            for name, d in _NAMED.items()]


@safenet.hookimpl
def safenet_environments() -> list[EnvSpec]:
    from .cacc import CaccConfig

    specs = [EnvSpec(name=e["name"], factory=e["factory"], config=CaccConfig, summary=e["summary"], tags=TAGS,
                     defaults=e["defaults"], overrides=OVERRIDES, parallel_env=PARALLEL_ENV)
             for e in environments()]
    specs.append(EnvSpec(
        name="cacc_<scenario>_<N>", factory=FACTORY, config=CaccConfig, pattern=NAME_PATTERN, tags=TAGS,
        summary="CACC platoon of any length: cacc_catchup_<N> or cacc_slowdown_<N> (N vehicles)",
        overrides=OVERRIDES, parallel_env=PARALLEL_ENV))
    return specs
