"""MuJoCo without OpenGL until a frame is asked for.

MuJoCo's Python package picks its OpenGL backend from ``MUJOCO_GL`` once, while ``import mujoco``
runs, and with ``MUJOCO_GL=egl`` on a machine without libEGL that import itself fails. Training and
evaluation never render, so :func:`import_mujoco` imports mujoco with ``MUJOCO_GL=disable`` (the
user's value is put back right after), and :func:`offscreen_context` chooses a backend only when
:meth:`~safenet_mamujoco.game.MamujocoGame.render` first needs one:

1. ``MUJOCO_GL`` when the user set it (``egl``, ``osmesa``, ``glfw``, ...);
2. ``glfw`` when a display exists (``DISPLAY`` or ``WAYLAND_DISPLAY``);
3. ``egl`` when libEGL can be loaded (GPU or Mesa), else ``osmesa`` when libOSMesa can;
4. otherwise :class:`NoRenderingBackend`, one line naming the packages to install.

Loadable means what PyOpenGL will do later: ``dlopen`` of ``libEGL.so``, ``libEGL.so.1``, ...
"""
from __future__ import annotations

import ctypes
import importlib
import os
import sys
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator

from safenet.errors import SafenetError

#: The backend's shared library, as PyOpenGL names it.
LIBRARIES = {"egl": "EGL", "osmesa": "OSMesa", "glfw": "GL", "glx": "GL"}
INSTALL_HINT = ("install libEGL for GPU or Mesa rendering (Debian/Ubuntu: apt install libegl1; conda: "
                "conda install -c conda-forge libegl) or OSMesa for software rendering (apt install libosmesa6), "
                "or set MUJOCO_GL to a backend this machine has")
_DISABLED = ("disable", "disabled", "off", "false", "0")


class NoRenderingBackend(SafenetError):
    """Rendering was asked for and no OpenGL backend can be loaded here."""


def import_mujoco() -> ModuleType:
    """``mujoco``, imported (the first time) without touching any OpenGL library."""
    if "mujoco" not in sys.modules:
        chosen = os.environ.get("MUJOCO_GL")
        os.environ["MUJOCO_GL"] = "disable"
        try:
            importlib.import_module("mujoco")
        finally:
            if chosen is None:
                del os.environ["MUJOCO_GL"]
            else:
                os.environ["MUJOCO_GL"] = chosen
    return sys.modules["mujoco"]


def loadable(library: str) -> bool:
    """True when ``lib<library>.so`` (or a numbered version of it) can be loaded."""
    base = f"lib{library}.so"
    for name in (base, *(f"{base}.{i}" for i in range(9, -1, -1))):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def choose_backend() -> str:
    """The OpenGL backend to render with (see the module docstring); raises :class:`NoRenderingBackend`."""
    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    if chosen in _DISABLED:
        raise NoRenderingBackend(f"cannot render: MUJOCO_GL={chosen!r} disables OpenGL; unset it or set it to "
                                 "egl, osmesa or glfw")
    if chosen in ("", "enable", "enabled", "on", "true", "1"):
        if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
            return "glfw"
        for backend in ("egl", "osmesa"):
            if loadable(LIBRARIES[backend]):
                return backend
        raise NoRenderingBackend(f"cannot render: no OpenGL library found (neither libEGL nor libOSMesa); {INSTALL_HINT}")
    if chosen in LIBRARIES and chosen != "glfw" and not loadable(LIBRARIES[chosen]):
        raise NoRenderingBackend(f"cannot render with MUJOCO_GL={chosen}: lib{LIBRARIES[chosen]} cannot be loaded; "
                                 f"{INSTALL_HINT}")
    return chosen


def _renderer_context_module() -> ModuleType:
    """The module whose ``GLContext`` attribute ``mujoco.Renderer`` instantiates."""
    for name in ("mujoco.rendering.classic.gl_context", "mujoco.gl_context"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise NoRenderingBackend("cannot render: this mujoco version has no gl_context module")


def context_class(backend: str) -> type:
    """MuJoCo's ``GLContext`` class of ``backend``; a failure to load it is one line."""
    try:
        return importlib.import_module(f"mujoco.{backend}").GLContext
    except Exception as exc:  # noqa: BLE001 - PyOpenGL raises AttributeError, ImportError, OSError...
        raise NoRenderingBackend(f"cannot render with the {backend} OpenGL backend ({type(exc).__name__}: {exc}); "
                                 f"{INSTALL_HINT}") from None


@contextmanager
def offscreen_context() -> Iterator[str]:
    """While active, ``mujoco.Renderer(...)`` creates its OpenGL context with the chosen backend.

    Yields the backend's name. The class mujoco consulted before is put back afterwards: a renderer
    keeps the context it made, so only construction needs the class.
    """
    backend = choose_backend()
    cls = context_class(backend)
    module = _renderer_context_module()
    missing = object()
    before = getattr(module, "GLContext", missing)
    module.GLContext = cls
    try:
        yield backend
    finally:
        if before is missing:
            del module.GLContext
        else:
            module.GLContext = before
