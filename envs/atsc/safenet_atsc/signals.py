"""Signal phases of a grid intersection and the yellow transition between two phases.

Every intersection has four approaches (``N, E, S, W``: where the traffic comes from) with three
lanes each, one per movement (lane 0 turns right, lane 1 goes straight, lane 2 turns left), so 12
links. A phase says which links have green:

==============  ===================================================================
``NS-through``  from N and S: straight and right ``G``, left ``g`` (yields to oncoming)
``EW-left``     from E and W: left and right ``G``
``EW-through``  from E and W: straight and right ``G``
``E-all``       from E: every movement ``G``
``W-all``       from W: every movement ``G``
==============  ===================================================================

Every other link is red. When the phase changes, links that lose green show ``y`` for the yellow
time; every other link keeps its old state during the yellow.
"""
from __future__ import annotations

APPROACHES = ("N", "E", "S", "W")
MOVEMENTS = ("right", "straight", "left")

#: phase -> {(approach, movement): state}; links not listed are red
_GREEN: tuple[dict[tuple[str, str], str], ...] = (
    {**{(a, "straight"): "G" for a in "NS"}, **{(a, "right"): "G" for a in "NS"}, **{(a, "left"): "g" for a in "NS"}},
    {**{(a, "left"): "G" for a in "EW"}, **{(a, "right"): "G" for a in "EW"}},
    {**{(a, "straight"): "G" for a in "EW"}, **{(a, "right"): "G" for a in "EW"}},
    {("E", m): "G" for m in MOVEMENTS},
    {("W", m): "G" for m in MOVEMENTS},
)
N_PHASES = len(_GREEN)


def phase_state(phase: int, links: list[tuple[str, str]]) -> str:
    """The SUMO state string of ``phase`` for links given as ``(approach, movement)`` in link-index order."""
    return "".join(_GREEN[phase].get(link, "r") for link in links)


def yellow_state(old: str, new: str) -> str:
    """The state shown during the yellow from state ``old`` to state ``new``."""
    return "".join("y" if o in "Gg" and n == "r" else o for o, n in zip(old, new))


def turn(approach: int, movement: int) -> int:
    """Index in ``APPROACHES`` of the side a vehicle from ``approach`` leaves by with ``movement``.

    Sides are clockwise (N, E, S, W): coming from N (driving south), right leads W, straight S, left E.
    """
    return (approach + (3, 2, 1)[movement]) % 4
