"""How many CPUs a run may keep busy.

``trainer.cpus`` bounds the threads of a whole run: torch's intra-op threads and the threads an
environment steps its copies with. Several runs sharing a machine (a seed sweep, Ray trials) each
get ``trainer.cpus`` so that together they never put more busy threads than cores on it.

The bound reaches environments through :func:`cpu_budget`: the trainer calls :func:`set_cpu_budget`
before it builds any game, and an environment that starts threads sizes its default pool with
``cpu_budget()`` (an explicit thread setting of the environment, e.g. ``env.threads``, still wins).
Outside a run ``cpu_budget()`` is ``$SAFENET_CPUS`` when set, else every CPU this process may use.
"""
from __future__ import annotations

import os

from .errors import ConfigError

ENV_VAR = "SAFENET_CPUS"
_run_budget: int | None = None


def machine_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_budget() -> int:
    """``$SAFENET_CPUS`` when set (a positive integer), else :func:`machine_cpus`."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return machine_cpus()
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{ENV_VAR}={raw!r} must be a positive integer (the CPUs a run may use)")
    return value


def resolve_cpus(cpus: int) -> int:
    """``trainer.cpus`` as a number of CPUs (0: :func:`default_budget`)."""
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 0:
        raise ConfigError(f"trainer.cpus must be an integer >= 0 (0: all CPUs), got {cpus!r}")
    return cpus or default_budget()


def set_cpu_budget(cpus: int) -> int:
    """Make ``cpus`` (``trainer.cpus``; 0: the default) the bound :func:`cpu_budget` reports; returns it."""
    global _run_budget
    _run_budget = resolve_cpus(cpus)
    return _run_budget


def cpu_budget() -> int:
    """The CPUs the current run may keep busy: what the trainer set, else :func:`default_budget`."""
    return _run_budget if _run_budget is not None else default_budget()


def torch_threads(budget: int, explicit: int, torch_default: int) -> int:
    """Torch intra-op threads of a run: ``trainer.torch_threads`` when set, else torch's default capped at
    the budget."""
    return int(explicit) if explicit else max(1, min(int(torch_default), int(budget)))
