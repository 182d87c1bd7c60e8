"""Adaptive traffic-signal control on a grid of intersections, simulated by SUMO: ``atsc_grid_<R>x<C>``."""
from __future__ import annotations

__version__ = "0.1.0"
