"""Checks of the specs a plugin registers, run when the plugin registers.

Each check returns a list of :class:`SpecProblem`; the plugin manager marks a plugin *failed* on the
first one, with a one-line reason naming the plugin, the spec and the field. What is checked:

* names: :data:`NAME_RULE` (they end up in run directory names and on command lines);
* config dataclasses: every attribute is an annotated field, every default matches its declared type;
* factories: ``"module:attribute"`` whose module exists and defines the attribute — found *without
  importing* the module when it is not imported yet (factories stay lazy: listing plugins never
  imports an algorithm's heavy dependencies). When the module is already imported, the object is
  also checked against the contract (an :class:`~safenet.algorithm.Algorithm` subclass with every
  abstract method implemented; a callable env factory), as :func:`check_factory_object` does for
  every factory when a run selects it and in ``safenet doctor``.
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import importlib.machinery
import importlib.util
import inspect
import pathlib
import re
import sys
import typing
from dataclasses import dataclass
from typing import Any

#: Algorithm and environment names: lower-case letters, digits, ``-`` and ``_``, starting with a
#: letter or digit, at most 64 characters. An environment spec with a ``pattern`` may show the
#: pattern's parts as ``<placeholders>`` in its name (``grid_wireless_<R>x<C>``).
NAME_RULE = "lower-case letters, digits, '-' and '_', starting with a letter or digit (at most 64 characters)"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_PLACEHOLDER = re.compile(r"<[A-Za-z][A-Za-z0-9_]*>")
SECTIONS = ("seed", "trainer", "run", "algo", "env")


@dataclass(frozen=True)
class SpecProblem:
    """What is wrong with one field of a spec (``field`` such as ``name``, ``factory``, ``config.lr``)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


# ------------------------------------------------------------------------------------------------
# names
# ------------------------------------------------------------------------------------------------

def check_name(name: Any, *, placeholders: bool = False) -> list[SpecProblem]:
    if not isinstance(name, str):
        return [SpecProblem("name", f"must be a string, got {type(name).__name__}")]
    probe = _PLACEHOLDER.sub("x", name) if placeholders else name
    if not _NAME.fullmatch(probe):
        return [SpecProblem("name", f"{name!r} is not a valid name; use {NAME_RULE}, e.g. "
                                    f"{_suggest_name(name)!r}")]
    return []


def _suggest_name(name: str) -> str:
    out = re.sub(r"[^a-z0-9_-]+", "-", name.strip().lower()).strip("-_")
    return out or "my-algo"


# ------------------------------------------------------------------------------------------------
# config dataclasses
# ------------------------------------------------------------------------------------------------

def check_config(config: type, prefix: str = "config", instance: Any = None) -> list[SpecProblem]:
    """Unannotated attributes and defaults that do not match their declared types (nested too: a
    nested dataclass field is checked with the values its default ``instance`` holds)."""
    problems = _unannotated(config, prefix) if instance is None else []
    try:
        hints = typing.get_type_hints(config)
    except Exception as exc:  # noqa: BLE001 - a NameError in a string annotation, typically
        return problems + [SpecProblem(prefix, f"cannot resolve the type annotations of {config.__name__} "
                                               f"({type(exc).__name__}: {exc})")]
    for f in dataclasses.fields(config):
        where = f"{prefix}.{f.name}"
        tp = hints.get(f.name, f.type)
        if instance is not None:
            value = getattr(instance, f.name)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            try:
                value = f.default_factory()
            except Exception as exc:  # noqa: BLE001
                problems.append(SpecProblem(where, f"default_factory raised {type(exc).__name__}: {exc}"))
                continue
        else:
            continue                                  # required value: compose asks for it
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            if not isinstance(value, tp):
                problems.append(SpecProblem(where, f"default {value!r} is not a {tp.__name__}; "
                                                   f"write `{f.name}: {tp.__name__} = field(default_factory={tp.__name__})`"))
            else:
                problems += check_config(tp, where, value)
            continue
        verdict = _matches(tp, value)
        if verdict is False:
            problems.append(SpecProblem(where, f"default {value!r} ({type(value).__name__}) does not match its "
                                               f"declared type {_type_name(tp)}; fix the default or the annotation"))
        elif verdict is None:
            problems.append(SpecProblem(where, f"type {_type_name(tp)} cannot be held by a config; use int, float, "
                                               "bool, str, Optional[...], List[...], Dict[str, ...], an Enum or a "
                                               "nested dataclass"))
    return problems


def _unannotated(config: type, prefix: str) -> list[SpecProblem]:
    """Class attributes that look like config values but are not fields (no annotation)."""
    fields = {f.name for f in dataclasses.fields(config)}
    annotated: set[str] = set()
    for klass in config.__mro__:
        annotated |= set(vars(klass).get("__annotations__", {}))
    problems = []
    for klass in config.__mro__:
        if klass is object:
            continue
        for name, value in vars(klass).items():
            if (name.startswith("_") or name in fields or name in annotated or name.isupper()
                    or callable(value) or isinstance(value, (property, classmethod, staticmethod, type))):
                continue
            kind = type(value).__name__
            problems.append(SpecProblem(f"{prefix}.{name}", f"`{name} = {value!r}` has no type annotation, so it is "
                                                            f"not a config field and silently vanishes from the "
                                                            f"config; write `{name}: {kind} = {value!r}`"))
    return problems


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


_ANY = object()


def _matches(tp: Any, value: Any) -> bool | None:
    """True/False: whether ``value`` fits ``tp``; None when ``tp`` is not a type a config can hold."""
    if tp is Any or tp is _ANY:
        return True
    if isinstance(tp, str):                   # an unresolved forward reference: leave it to omegaconf
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or (sys.version_info >= (3, 10) and origin is getattr(__import__("types"), "UnionType")):
        if value is None:
            return type(None) in args
        verdicts = [_matches(a, value) for a in args if a is not type(None)]
        if any(v is True for v in verdicts):
            return True
        return None if all(v is None for v in verdicts) else False
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                return False
            return _all([_matches(a, v) for a, v in zip(args, value)])
        inner = args[0] if args else _ANY
        return _all([_matches(inner, v) for v in value])
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            return False
        inner = args[1] if len(args) == 2 else _ANY
        return _all([_matches(inner, v) for v in value.values()])
    if not isinstance(tp, type):
        return None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp in (str, bytes):
        return isinstance(value, tp)
    if issubclass(tp, pathlib.PurePath):
        return isinstance(value, (str, pathlib.PurePath))
    if issubclass(tp, enum.Enum):
        return isinstance(value, tp)
    if dataclasses.is_dataclass(tp):
        return isinstance(value, tp)
    return None


def _all(verdicts: list[bool | None]) -> bool | None:
    if any(v is None for v in verdicts):
        return None
    return all(verdicts)


# ------------------------------------------------------------------------------------------------
# factories
# ------------------------------------------------------------------------------------------------

def check_factory_string(factory: Any) -> list[SpecProblem]:
    """``"module:attribute"`` whose module exists and binds the attribute, without importing anything new."""
    if not isinstance(factory, str):
        return [SpecProblem("factory", f"must be an import string 'package.module:attribute', got {type(factory).__name__}")]
    module, _, attr = factory.partition(":")
    if not module or not attr:
        return [SpecProblem("factory", f"{factory!r} must look like 'package.module:attribute'")]
    loaded = sys.modules.get(module)
    if loaded is not None:
        if not hasattr(loaded, attr.split(".")[0]):
            return [SpecProblem("factory", f"{factory!r}: module {module!r} has no attribute {attr.split('.')[0]!r}"
                                           f"{_near(attr.split('.')[0], dir(loaded))}")]
        return []
    spec, missing = _find_module(module)
    if missing is not None:
        return [SpecProblem("factory", f"{factory!r}: no module named {missing!r} (is the module path right, and "
                                       f"is the file inside the installed package?)")]
    first = attr.split(".")[0]
    bound, names = _binds(spec, first)
    if not bound:
        return [SpecProblem("factory", f"{factory!r}: module {module!r} defines no {first!r}"
                                       f"{_near(first, names)}")]
    return []


def _near(word: str, choices) -> str:
    from .errors import did_you_mean

    return did_you_mean(word, [c for c in choices if not c.startswith("_")])


def _find_module(module: str) -> tuple[Any, str | None]:
    """The module's spec, located without importing it (only already-imported parents are used).

    Returns ``(spec, None)``, ``(None, name_not_found)``, or ``(None, None)`` when it cannot be told
    without importing (then the check is left to :func:`check_factory_object`).
    """
    parts = module.split(".")
    path = None
    spec = None
    for k in range(len(parts)):
        name = ".".join(parts[: k + 1])
        mod = sys.modules.get(name)
        if mod is not None:
            spec = getattr(mod, "__spec__", None)
            path = getattr(mod, "__path__", None)
            if path is None and k < len(parts) - 1:
                return None, ".".join(parts[: k + 2])   # a plain module has no submodules
            continue
        try:
            # a top-level name goes through every finder (editable installs too); a submodule of a
            # package that is not imported yet is looked up in that package's folders. Neither
            # executes any module.
            spec = (importlib.util.find_spec(name) if k == 0
                    else importlib.machinery.PathFinder.find_spec(parts[k], path))
        except Exception:  # noqa: BLE001 - an odd finder: leave it to the full check
            return None, None
        if spec is None:
            return None, name
        path = spec.submodule_search_locations
    return spec, None


_ALIAS = re.compile(r"\bas\s+(\w+)")
_FROM_IMPORT = re.compile(r"^from\s+[\w.]+\s+import\s+([^\n#]+)", re.MULTILINE)
_DEFINED = re.compile(r"^(?:class|def|async def)\s+(\w+)|^(\w+)\s*(?::[^=\n]*)?=", re.MULTILINE)


@functools.lru_cache(maxsize=256)
def _source(origin: str) -> str | None:
    try:
        return pathlib.Path(origin).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


def _binds(spec: Any, name: str) -> tuple[bool, list[str]]:
    """Whether a module's source (read, not run) may bind ``name``, and the top-level names it defines.

    Deliberately lenient, and fast (no parsing): any occurrence of ``name``, a star
    import or a module ``__getattr__`` counts as "may bind". Only a name the file never mentions is
    reported missing.
    """
    origin = getattr(spec, "origin", None) if spec is not None else None
    text = _source(str(origin)) if origin and str(origin).endswith(".py") else None
    if text is None or "import *" in text or "def __getattr__" in text:
        return True, []
    if name in text:
        return True, []
    names = {a or b for a, b in _DEFINED.findall(text)} | set(_ALIAS.findall(text))
    for imported in _FROM_IMPORT.findall(text):
        names |= {part.split()[0] for part in imported.strip("() ").split(",") if part.strip()}
    return False, sorted(names)


def check_factory_object(kind: str, obj: Any) -> str | None:
    """Why a loaded factory does not fulfil the contract (None when it does)."""
    if kind == "algorithm":
        from .algorithm import Algorithm

        if not isinstance(obj, type):
            return f"must name a class (a safenet.algorithm.Algorithm subclass), got {type(obj).__name__}"
        if not issubclass(obj, Algorithm):
            return f"class {obj.__name__} must subclass safenet.algorithm.Algorithm"
        missing = sorted(getattr(obj, "__abstractmethods__", ()))
        if missing:
            return (f"class {obj.__name__} does not implement the abstract method(s) {', '.join(missing)} "
                    f"of safenet.algorithm.Algorithm")
        return None
    if not callable(obj):
        return f"must name a callable make(cfg, num_envs, seed) -> BatchedGame, got {type(obj).__name__}"
    if isinstance(obj, type):
        from .game import BatchedGame

        if issubclass(obj, BatchedGame) and getattr(obj, "__abstractmethods__", None):
            return (f"class {obj.__name__} does not implement the abstract method(s) "
                    f"{', '.join(sorted(obj.__abstractmethods__))} of safenet.BatchedGame")
        return None
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return None
    takes_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    lacking = [k for k in ("num_envs", "seed") if k not in params and not takes_kw]
    if lacking:
        return f"{getattr(obj, '__name__', obj)}() must accept the keyword argument(s) {', '.join(lacking)}"
    return None


# ------------------------------------------------------------------------------------------------
# whole specs
# ------------------------------------------------------------------------------------------------

def check_spec(spec: Any) -> list[SpecProblem]:
    """Every problem of an :class:`~safenet.specs.AlgorithmSpec` or :class:`~safenet.specs.EnvSpec`."""
    from .specs import PLUGIN_API_VERSION, EnvSpec

    is_env = isinstance(spec, EnvSpec)
    problems = check_name(spec.name, placeholders=is_env and spec.pattern is not None)
    if not isinstance(spec.api_version, int) or spec.api_version > PLUGIN_API_VERSION:
        problems.append(SpecProblem("api_version", f"{spec.api_version!r}: this safenet speaks plugin API "
                                                   f"{PLUGIN_API_VERSION}; upgrade safenet or lower api_version"))
    tags = spec.tags if is_env else spec.requires
    bad_tags = [t for t in tags if not isinstance(t, str)]
    if bad_tags:
        problems.append(SpecProblem("tags" if is_env else "requires", f"must hold strings, got {bad_tags!r}"))
    for section in dict(spec.overrides):
        if section not in SECTIONS:
            problems.append(SpecProblem("overrides", f"unknown section {section!r}; valid: {', '.join(SECTIONS)}"))
    problems += check_factory_string(spec.factory)
    if not problems and spec.factory.partition(":")[0] in sys.modules:
        try:
            why = check_factory_object("environment" if is_env else "algorithm", spec.load_raw())
        except Exception as exc:  # noqa: BLE001
            why = f"{type(exc).__name__}: {exc}"
        if why:
            problems.append(SpecProblem("factory", f"{spec.factory!r}: {why}"))
    if is_env and spec.parallel_env is not None:
        problems += [SpecProblem("parallel_env", p.message) for p in check_factory_string(spec.parallel_env)]
    problems += check_config(spec.config)
    return problems
