"""Typed errors for bad user input: the CLI prints them as one line (exit status 2)."""
from __future__ import annotations

import difflib
from typing import Iterable


class SafenetError(Exception):
    """Any error caused by user input or an impossible request; shown without a traceback."""


class ConfigError(SafenetError):
    """A config key or value is wrong; the message names the key's full path."""


class RegistryError(SafenetError):
    """Unknown, duplicate or incompatible algorithm/environment names."""


class IncompatibleError(SafenetError):
    """An algorithm cannot run on an environment (e.g. a tabular method on continuous actions)."""


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    m = close_matches(word, choices)
    return f" (did you mean {m[0]!r}?)" if m else ""
