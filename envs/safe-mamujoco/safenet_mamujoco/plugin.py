"""Registers the Safe MAMuJoCo tasks with safenet (entry point ``safenet_mamujoco`` in group ``safenet``).

Light on purpose: imports only safenet and the config module; MuJoCo is imported when a game is built.
Every public task name is registered on its own (so ``safenet plugins`` lists it); each family also
has a pattern spec serving its other partitions (``safe_manyagent_ant_4x3``, ``safe_ant_2x4d``, ...).
"""
from __future__ import annotations

import re

import safenet
from safenet.errors import RegistryError
from safenet.specs import EnvSpec

from .config import FAMILIES, NAMED_TASKS, MamujocoConfig

FACTORY = "safenet_mamujoco.game:make"
PARALLEL_ENV = "safenet_mamujoco.game:parallel_env"
_PART = r"(?P<partition>\d+x\d+d?)"


def _tags(family: str) -> frozenset[str]:
    tags = {"continuous", "global_state"}
    if FAMILIES[family].scenario != "none":
        tags.add("constrained")
    return frozenset(tags)


# Suggested run settings of the corridor tasks (ants that walk a zig-zag corridor; falling ends the
# episode). The budget is the papers' (1e7 env steps). The Lagrangian's multiplier is in reward per
# unit of cost and at most the healthy reward of 1 per step: a larger one makes falling, which ends
# the episode and with it the cost, the optimum of the per-episode Lagrangian
# (docs/reports/headline_safe_ant_8x1.md). Only the algorithms that have these keys take them.
CORRIDOR_OVERRIDES = {
    "trainer": {"total_steps": 10_000_000, "n_envs": 8, "eval_every_steps": 250_000, "eval_episodes": 8},
    "algo": {"rollout_steps": 500, "penalty_units": "reward", "lagrange_cap": "reward_rate",
             "lagrange": {"max_value": 1.0}},
}


def _overrides(family: str) -> dict:
    return CORRIDOR_OVERRIDES if FAMILIES[family].scenario == "corridor" else {}


def family_pattern(family: str) -> str:
    if FAMILIES[family].scenario == "velocity":
        robot = family[len("safety_"):-len("_velocity")]
        return rf"safety_{robot}_{_PART}_velocity"
    return rf"{family}_{_PART}"


def default_partition(family: str) -> str:
    """The first public partition of a family (what its pattern spec composes with by default)."""
    return next(p for f, p in NAMED_TASKS.values() if f == family)


def resolve_task(name: str) -> tuple[str, str]:
    """``"safe_ant_8x1"`` → ``("safe_ant", "8x1")``; raises RegistryError listing the task names."""
    key = name.strip().lower().replace("-", "_")
    if key in NAMED_TASKS:
        return NAMED_TASKS[key]
    for family in FAMILIES:
        m = re.fullmatch(family_pattern(family), key)
        if m:
            return family, m.group("partition")
    raise RegistryError(f"unknown Safe MAMuJoCo task {name!r}; valid choices: {', '.join(sorted(NAMED_TASKS))} "
                        f"(or another partition of a family: {', '.join(sorted(FAMILIES))})")


@safenet.hookimpl
def safenet_environments() -> list[EnvSpec]:
    specs = [EnvSpec(name=name, factory=FACTORY, config=MamujocoConfig, tags=_tags(family),
                     summary=FAMILIES[family].summary + f" ({partition})",
                     defaults={"family": family, "partition": partition}, parallel_env=PARALLEL_ENV,
                     overrides=_overrides(family))
             for name, (family, partition) in NAMED_TASKS.items()]
    for family, fam in FAMILIES.items():
        label = fam.name(family, "<partition>")
        specs.append(EnvSpec(name=label, pattern=family_pattern(family), factory=FACTORY, config=MamujocoConfig,
                             tags=_tags(family), summary=fam.summary + " (any partition of the family)",
                             defaults={"family": family, "partition": default_partition(family)},
                             parallel_env=PARALLEL_ENV, overrides=_overrides(family)))
    return specs
