"""Registers the grid environments with safenet (entry point ``safenet_grid`` in group ``safenet``).

Two faces of the same table:

* :func:`environments` and :func:`parse_name`: plain data (dicts), independent of the hook system;
* :func:`safenet_environments`: the pluggy hook, returning :class:`safenet.EnvSpec` objects built
  from that table, plus one pattern spec so that any ``grid_wireless_<R>x<C>`` name works.
"""
from __future__ import annotations

import re
from typing import Any

import safenet
from safenet.specs import EnvSpec

FACTORY = "safenet_grid.wireless:make"
PARALLEL_ENV = "safenet_grid.wireless:parallel_env"
#: Named groups set the env config keys ``rows`` and ``cols``.
NAME_PATTERN = r"grid_wireless_(?P<rows>\d+)x(?P<cols>\d+)"
#: Tags every wireless grid has (GameSpec adds discrete/global_state/constrained itself; listed
#: here so the registry can check algorithm requirements without building the game).
TAGS = frozenset({"finite", "discrete", "global_state", "constrained"})
#: Suggested values for other config sections (the reference trains with γ = 0.7).
# γ = 0.7 as in the reference experiments; a budget at which Scalable Actor Critic learns the
# 3x3 instance in about two minutes on 2 cores (larger grids need more: set trainer.total_steps)
OVERRIDES: dict[str, Any] = {"algo": {"gamma": 0.7}, "trainer": {"total_steps": 300_000}}

_NAMED: dict[str, dict[str, Any]] = {
    "grid_wireless_3x3": {"rows": 3, "cols": 3, "users_per_cell": 1},
    "grid_wireless_5x5": {"rows": 5, "cols": 5, "users_per_cell": 1},
    "grid_wireless_3x4": {"rows": 3, "cols": 4, "users_per_cell": 2},
}


def _summary(d: dict[str, Any]) -> str:
    r, c, u = d["rows"], d["cols"], d["users_per_cell"]
    ref = ", the Scalable Actor Critic reference instance" if (r, c, u) == (3, 4, 2) else ""
    return (f"wireless access grid, {r}x{c} cells x {u} user{'s' if u > 1 else ''} per cell = {r * c * u} users, "
            f"{(r - 1) * (c - 1)} access points{ref}; energy cost per transmission attempt")


def environments() -> list[dict[str, Any]]:
    """The registered names: ``{"name", "factory", "summary", "defaults"}`` each.

    ``factory`` is the import string of ``make(cfg, num_envs, seed)``; ``defaults`` are the config
    keys that differ from :class:`~safenet_grid.wireless.WirelessConfig`'s defaults.
    """
    return [{"name": name, "factory": FACTORY, "summary": _summary(d), "defaults": dict(d)}
            for name, d in _NAMED.items()]


def parse_name(name: str) -> dict[str, Any] | None:
    """Config defaults for a ``grid_wireless_<R>x<C>`` name (``None`` if the name is not one).

    Registered names give their defaults (``grid_wireless_3x4`` has 2 users per cell); any other
    size gets 1 user per cell.
    """
    key = name.strip().lower().replace("-", "_")
    if key in _NAMED:
        return dict(_NAMED[key])
    m = re.fullmatch(NAME_PATTERN, key)
    if m is None:
        return None
    return {"rows": int(m["rows"]), "cols": int(m["cols"]), "users_per_cell": 1}


@safenet.hookimpl
def safenet_environments() -> list[EnvSpec]:
    from .wireless import WirelessConfig

    specs = [EnvSpec(name=e["name"], factory=e["factory"], config=WirelessConfig, summary=e["summary"],
                     tags=TAGS, defaults=e["defaults"], overrides=OVERRIDES, parallel_env=PARALLEL_ENV)
             for e in environments()]
    specs.append(EnvSpec(
        name="grid_wireless_<R>x<C>", factory=FACTORY, config=WirelessConfig, pattern=NAME_PATTERN, tags=TAGS,
        summary="wireless access grid of any size: grid_wireless_<R>x<C> (R, C >= 2; 1 user per cell "
                "unless env.users_per_cell is set)",
        overrides=OVERRIDES, parallel_env=PARALLEL_ENV))
    return specs
