"""Safe multi-agent MuJoCo for safenet: Safe MAMuJoCo (walls, bomb) and velocity-constrained MaMuJoCo tasks.

Built on the ``mujoco`` package directly; models are generated in code. See the README for the tasks.
"""
from __future__ import annotations

import os

# Headless rendering: MuJoCo reads MUJOCO_GL once, when it is first imported, so choose EGL here (before
# any of our modules imports mujoco) unless a display exists or the user chose a backend.
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"

__all__ = ["__version__"]
