"""``trainer.device``: which torch device a run's networks, optimizer state and updates live on.

:func:`resolve_device` turns the config string into a ``torch.device`` and refuses, in one line naming
the key, a device this machine does not have or the algorithm does not run on (an algorithm lists
the device types it supports in :attr:`safenet.specs.AlgorithmSpec.devices`; the default is
``cpu`` only, so an algorithm never ignores a GPU it was given without saying so).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_TYPES = ("cpu", "cuda", "mps")
CHOICES = "cpu, cuda, cuda:<index>, mps"
_PATTERN = re.compile(r"(cpu|cuda|mps)(?::(\d+))?")


def usable_devices() -> list[str]:
    """Device strings ``trainer.device`` accepts on this machine."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        out += ["cuda"] + [f"cuda:{i}" for i in range(n)]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def parse_device(name: str, key: str = "trainer.device") -> tuple[str, int | None]:
    """``(type, index)`` of a device string (type one of :data:`DEVICE_TYPES`); the machine is not consulted."""
    m = _PATTERN.fullmatch(str(name).strip().lower())
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise ConfigError(f"{key}={name!r} is not a device; valid choices: {CHOICES}")
    return m.group(1), int(m.group(2)) if m.group(2) is not None else None


def check_usable(dev: "torch.device", name: str, key: str = "trainer.device") -> None:
    """Refuse a device this machine cannot run (no CUDA GPU, an index past the last GPU, no MPS)."""
    import torch

    here = ", ".join(usable_devices())
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ConfigError(f"{key}={name!r}: no usable CUDA GPU here (torch {torch.__version__}, {build}); "
                              f"valid choices on this machine: {here}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{key}={name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s); "
                              f"valid choices on this machine: {here}")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"{key}={name!r}: no usable Apple MPS device here; valid choices on this machine: {here}")


def resolve_device(name: str, supported: Iterable[str] = DEVICE_TYPES, algo: str | None = None,
                   key: str = "trainer.device") -> "torch.device":
    """``trainer.device`` checked against the algorithm's supported device types and this machine."""
    import torch

    kind, index = parse_device(name, key)
    dev = torch.device(kind, index) if index is not None else torch.device(kind)
    supported = tuple(supported)
    if dev.type not in supported:
        who = f"algorithm {algo!r}" if algo else "this algorithm"
        raise ConfigError(f"{key}={name!r}: {who} runs on {', '.join(supported)} only; "
                          f"set {key}={supported[0]}")
    check_usable(dev, name, key)
    return dev
