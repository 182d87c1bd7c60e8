"""Typed errors for bad user input: the CLI prints them as one line (exit status 2)."""
from __future__ import annotations

import difflib
from typing import Iterable


class SafenetError(Exception):
    """Any error caused by user input or an impossible request; shown without a traceback."""


class ConfigError(SafenetError):
    """A config key or value is wrong; the message names the key's full path."""


class ConfigValueError(ConfigError, ValueError):
    """A config value outside what its key allows (see :mod:`safenet.validation`); also a ValueError so
    code that builds config dataclasses directly can catch it as one."""


class RunFileError(SafenetError):
    """A file of a run directory (config.yaml, meta.json, metrics.csv, a checkpoint) is damaged or
    belongs to another run; the message names the file and what to do."""


class NonFiniteError(SafenetError):
    """Training produced nan/inf (a loss, a parameter, a multiplier or an observation)."""


class RegistryError(SafenetError):
    """Unknown, duplicate or incompatible algorithm/environment names."""


class IncompatibleError(SafenetError):
    """An algorithm cannot run on an environment (e.g. a tabular method on continuous actions)."""


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    m = close_matches(word, choices)
    return f" (did you mean {m[0]!r}?)" if m else ""
