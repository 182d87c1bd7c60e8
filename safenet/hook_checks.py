"""Checks of a plugin's hook functions and of what its registration hooks return.

pluggy's own errors for these mistakes are either missing (a hook function without
``@safenet.hookimpl`` is silently ignored; an entry point in a misspelt group is never seen) or
cryptic (``returned str, not AlgorithmSpec`` for a hook that returned a dict). These turn each one
into a sentence that names the hook and says what to write instead.
"""
from __future__ import annotations

import difflib
import inspect
import re
from typing import Any, Iterable

from . import hookspecs
from .errors import did_you_mean

GROUP = "safenet"


def hook_names() -> list[str]:
    marker = f"{hookspecs.PROJECT}_spec"
    return sorted(n for n, fn in vars(hookspecs).items() if n.startswith("safenet_") and hasattr(fn, marker))


def _hook_args(name: str) -> list[str]:
    return list(inspect.signature(getattr(hookspecs, name)).parameters)


def _impl_args(fn: Any) -> list[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.default is p.empty and p.name != "self"]


def hookimpl_errors(pm: Any, obj: Any) -> list[str]:
    """Decorated functions that are not hooks (with a "did you mean"), or that ask for arguments the hook lacks."""
    hooks = hook_names()
    errors = []
    for name in dir(obj):
        try:
            opts = pm.parse_hookimpl_opts(obj, name)
        except Exception:  # noqa: BLE001 - odd attributes (properties raising): not hooks
            continue
        if opts is None:
            continue
        if name not in hooks:
            near = did_you_mean(name, hooks)
            errors.append(f"{name} is marked @safenet.hookimpl but is not a safenet hook{near}; "
                          f"hooks are: {', '.join(hooks)}")
            continue
        extra = [a for a in _impl_args(getattr(obj, name)) if a not in _hook_args(name)]
        if extra:
            errors.append(f"{name} asks for {', '.join(map(repr, extra))}, which the hook does not pass; "
                          f"it passes: {', '.join(_hook_args(name)) or '(nothing)'}")
    return errors


def undecorated_hooks(pm: Any, obj: Any) -> list[str]:
    """Functions named exactly like a hook but without ``@safenet.hookimpl`` (pluggy ignores them)."""
    out = []
    for name in hook_names():
        fn = getattr(obj, name, None)
        if fn is None or not (inspect.isfunction(fn) or inspect.ismethod(fn)):
            continue
        if pm.parse_hookimpl_opts(obj, name) is None:
            out.append(f"function {name} has no @safenet.hookimpl decorator, so safenet ignores it; "
                       f"decorate it with @safenet.hookimpl")
    return out


def check_registration_result(hook: str, result: Any, expected: type) -> list:
    """The list a registration hook returned, or a :class:`TypeError` saying which container to return."""
    what = expected.__name__
    if result is None:
        return []
    if isinstance(result, expected):
        raise TypeError(f"{hook} returned one {what}, not a list; return [{what}(...)]")
    if isinstance(result, dict):
        raise TypeError(f"{hook} returned a dict; return a list of {what} (e.g. `return list(specs.values())`)")
    if isinstance(result, (str, bytes)) or not isinstance(result, (list, tuple)):
        raise TypeError(f"{hook} returned {type(result).__name__}; return a list of {what}")
    for k, item in enumerate(result):
        if not isinstance(item, expected):
            raise TypeError(f"{hook} returned a list whose item {k} is {type(item).__name__}, not {what}; "
                            f"build each item with safenet.{what}(...)")
    return list(result)


def near_miss_groups(groups: Iterable[str]) -> list[str]:
    """Entry-point group names that look like a misspelling of ``safenet``."""
    out = []
    for g in groups:
        if g == GROUP:
            continue
        core = re.sub(r"[^a-z]", "", g.lower())
        if core.startswith("safenet") or difflib.SequenceMatcher(None, core, GROUP).ratio() >= 0.8:
            out.append(g)
    return sorted(set(out))
