"""Constraints declared next to config fields, checked in one place after the config is composed.

A config dataclass (the core's, an algorithm's, an environment's) declares what each key accepts
with :func:`param` instead of hand-written checks::

    @dataclass
    class MyAlgoConfig:
        gamma: float = param(0.99, ge=0, lt=1)          # discount
        hidden: list[int] = param(default_factory=lambda: [64], min_items=1, item_ge=1)
        mode: str = param("fast", choices=("fast", "exact"))

:func:`safenet.config.validate` walks the composed run config and checks every field that carries a
constraint, so a third-party plugin's keys are checked before anything runs without any code of
its own. Every float anywhere in the config must also be finite (``nan``/``inf`` are refused)
unless its field says ``finite=False``. A violation is a :class:`ConfigValueError` whose message
names the full key, the bad value and what is allowed, e.g.
``algo.gamma=1.0: must be a number in [0, 1)``.

Dataclasses that are also built directly (tests, notebooks) call :func:`check_fields` from their
``__post_init__`` to get the same checks; cross-field rules stay in ``__post_init__``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import MISSING, dataclass, field
from typing import Any, Callable, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from .errors import ConfigValueError

META_KEY = "safenet"
#: YAML 1.1 words omegaconf reads as booleans
YAML_BOOL_WORDS = ("on", "off", "yes", "no", "y", "n", "true", "false")


@dataclass(frozen=True)
class Constraint:
    """What one config field accepts (all parts optional; unset parts are not checked)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    finite: bool = True                        # floats must be finite (nan, inf refused)
    integer: bool = False                      # a number that must be whole (for untyped fields)
    min_items: int | None = None               # lists: at least this many items
    item_ge: float | None = None               # lists: every item >= this
    item_gt: float | None = None
    check: Callable[[Any], str | None] | None = None   # returns what is allowed when the value is wrong
    allowed: str | None = None                 # overrides the generated "what is allowed" text

    # -- description ----------------------------------------------------------------------------
    def _bounds(self) -> str:
        lo = ("[", self.ge) if self.ge is not None else ("(", self.gt) if self.gt is not None else None
        hi = ("]", self.le) if self.le is not None else (")", self.lt) if self.lt is not None else None
        if lo and hi:
            return f" in {lo[0]}{_num(lo[1])}, {_num(hi[1])}{hi[0]}"
        if lo:
            return f" {'>=' if lo[0] == '[' else '>'} {_num(lo[1])}"
        if hi:
            return f" {'<=' if hi[0] == ']' else '<'} {_num(hi[1])}"
        return ""

    def describe(self, kind: str = "") -> str:
        if self.allowed:
            return self.allowed
        if self.choices is not None:
            return "one of " + ", ".join(show_value(c) for c in self.choices)
        if self.min_items is not None or self.item_ge is not None or self.item_gt is not None:
            empty = "a non-empty list" if (self.min_items or 0) >= 1 else "a list"
            item = ">= " + _num(self.item_ge) if self.item_ge is not None else (
                "> " + _num(self.item_gt) if self.item_gt is not None else "")
            return f"{empty} of {'integers' if self.integer else 'numbers'}{' ' + item if item else ''}"
        noun = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}.get(
            kind, "an integer" if self.integer else "a number")
        if kind == "float" and self.finite:
            noun = "a finite number"
        return noun + self._bounds()

    # -- checking -------------------------------------------------------------------------------
    def problem(self, value: Any) -> bool | str:
        """False when ``value`` is allowed; True, or a sentence saying what is allowed, when not."""
        if value is None:
            return False
        if self.choices is not None:
            return value not in self.choices
        if isinstance(value, (list, tuple)):
            if self.min_items is not None and len(value) < self.min_items:
                return True
            for item in value:
                if not _is_number(item) or (self.item_ge is not None and item < self.item_ge) or (
                        self.item_gt is not None and item <= self.item_gt):
                    return True
            return False
        if _is_number(value):
            if isinstance(value, float) and self.finite and not math.isfinite(value):
                return True
            if self.integer and float(value) != int(value):
                return True
            if math.isnan(value) and any(b is not None for b in (self.ge, self.gt, self.le, self.lt)):
                return True
            if (self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt) or (
                    self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt):
                return True
        if self.check is not None:
            why = self.check(value)
            if why:
                return why
        return False


def param(default: Any = MISSING, *, default_factory: Any = MISSING, ge: float | None = None,
          gt: float | None = None, le: float | None = None, lt: float | None = None,
          choices: Sequence[Any] | None = None, finite: bool = True, integer: bool = False,
          min_items: int | None = None, item_ge: float | None = None, item_gt: float | None = None,
          check: Callable[[Any], str | None] | None = None, allowed: str | None = None) -> Any:
    """A dataclass ``field`` carrying a :class:`Constraint` (see the module docstring)."""
    c = Constraint(ge=ge, gt=gt, le=le, lt=lt, choices=tuple(choices) if choices is not None else None,
                   finite=finite, integer=integer, min_items=min_items, item_ge=item_ge, item_gt=item_gt,
                   check=check, allowed=allowed)
    return field(default=default, default_factory=default_factory, metadata={META_KEY: c})


def constraint_of(f: dataclasses.Field) -> Constraint | None:
    return f.metadata.get(META_KEY) if f.metadata else None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num(x: float | None) -> str:
    return "?" if x is None else (str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x))


def show_value(value: Any) -> str:
    """A value as a user would type it (YAML-ish)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    return repr(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return ""


def _bool_hint(value: Any, c: Constraint | None) -> str:
    if isinstance(value, str) and value in ("True", "False") and c is not None and c.choices is not None:
        return (" (YAML reads on/off/yes/no as true/false: quote the word in a YAML file, e.g. 'off'; "
                "on the command line it is kept as typed)")
    return ""


def violation(key: str, value: Any, c: Constraint | None) -> ConfigValueError | None:
    """The error for ``key=value`` under constraint ``c`` (and the finiteness rule), or None."""
    if c is None:
        if isinstance(value, float) and not math.isfinite(value):
            return ConfigValueError(f"{key}={show_value(value)}: must be a finite number")
        if isinstance(value, (list, tuple)) and any(isinstance(v, float) and not math.isfinite(v) for v in value):
            return ConfigValueError(f"{key}={show_value(value)}: must hold finite numbers")
        return None
    why = c.problem(value)
    if not why:
        return None
    allowed = why if isinstance(why, str) else c.describe(_kind(value))
    return ConfigValueError(f"{key}={show_value(value)}: must be {allowed}{_bool_hint(value, c)}")


def check_fields(obj: Any, prefix: str) -> None:
    """Check every field of dataclass instance ``obj`` (and nested dataclasses); ``prefix`` is the
    section's key, e.g. ``"algo"``. Raises :class:`ConfigValueError`."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_fields(value, key)
            continue
        err = violation(key, list(value) if isinstance(value, tuple) else value, constraint_of(f))
        if err is not None:
            raise err


def check_config(cfg: DictConfig, prefix: str = "") -> None:
    """Check a composed (typed) config: every field with a constraint, every float finite.

    Values are read after interpolation; fields of sections that are not dataclasses (plain dicts)
    get the finiteness rule only."""
    cls = OmegaConf.get_type(cfg)
    fields = {f.name: f for f in dataclasses.fields(cls)} if cls is not None and dataclasses.is_dataclass(cls) else {}
    for name in cfg.keys():
        key = f"{prefix}.{name}" if prefix else str(name)
        node = cfg._get_node(name)
        if isinstance(node, DictConfig):
            if not node._is_none() and not node._is_missing():
                check_config(node, key)
            continue
        value = OmegaConf.to_container(node, resolve=True) if isinstance(node, ListConfig) else cfg[name]
        f = fields.get(str(name))
        err = violation(key, value, constraint_of(f) if f is not None else None)
        if err is not None:
            raise err


def allowed_text(cfg: DictConfig, key: str) -> str | None:
    """What ``key`` of the schema ``cfg`` accepts (its constraint's description, else its type), for
    messages about values omegaconf itself refused."""
    node: Any = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node, DictConfig) or part not in node:
            return None
        node = node._get_node(part)
    if not isinstance(node, DictConfig) or parts[-1] not in node:
        return None
    child = node._get_node(parts[-1])
    if isinstance(child, DictConfig):
        return "a section of keys (" + ", ".join(str(k) for k in child.keys()) + ")"
    cls = OmegaConf.get_type(node)
    f = {f.name: f for f in dataclasses.fields(cls)}.get(parts[-1]) if cls and dataclasses.is_dataclass(cls) else None
    c = constraint_of(f) if f is not None else None
    kind = {"IntegerNode": "int", "FloatNode": "float", "StringNode": "str", "BooleanNode": "bool"}.get(
        type(child).__name__, "")
    if isinstance(child, ListConfig):
        return c.describe("list") if c is not None else "a list"
    if c is not None:
        return c.describe(kind)
    return {"int": "an integer", "float": "a finite number", "str": "a string", "bool": "true or false"}.get(kind)
