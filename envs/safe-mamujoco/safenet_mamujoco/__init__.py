"""Safe multi-agent MuJoCo for safenet: Safe MAMuJoCo (walls, bomb) and velocity-constrained MaMuJoCo tasks.

Built on the ``mujoco`` package directly; models are generated in code. See the README for the tasks.
No OpenGL library is needed until a frame is rendered (:mod:`safenet_mamujoco.gl`).
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
