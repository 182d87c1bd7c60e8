"""Plugin discovery and the algorithm/environment registries.

Entry points in the ``safenet`` group are loaded one at a time: a plugin whose import (or whose
registration hook) raises is recorded as *failed* with its error and never stops the others. Two
distributions registering the same name are both kept; asking for the bare name then errors,
listing the ``dist:name`` forms that choose one.

Environment variables:

* ``SAFENET_STRICT_PLUGINS=1``: any plugin failure is fatal (use it in CI of plugin authors);
* ``SAFENET_DISABLE_PLUGIN_AUTOLOAD=1``: do not load entry points (only in-process plugins);
* ``SAFENET_DISABLE_PLUGINS=a,b``: skip these entry-point names;
* ``SAFENET_PLUGINS=pkg.mod,other.mod``: also load these modules as plugins (no install needed —
  handy while writing a plugin, like pytest's ``-p``).
"""
from __future__ import annotations

import importlib.metadata as md
import os
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import pluggy

from . import hook_checks, hookspecs
from .errors import RegistryError, close_matches
from .spec_checks import check_spec
from .specs import AlgorithmSpec, EnvSpec, normalise

GROUP = hook_checks.GROUP


class PluginWarning(UserWarning):
    """A plugin failed to load, or loaded with a mistake; the message is one self-contained line."""


def _emit(message: str) -> None:
    # warn_explicit with a location that has no source: printed as one line, never with a source line
    warnings.warn_explicit(message, PluginWarning, filename="safenet", lineno=0, module="safenet.plugins")


@dataclass
class PluginInfo:
    """One plugin as `safenet plugins` shows it."""

    name: str
    distribution: str
    version: str
    status: str = "active"  # active | failed | disabled
    error: str | None = None
    traceback: str | None = None
    algorithms: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)    # mistakes that did not stop it loading

    @property
    def label(self) -> str:
        """``'name' (distribution)``, as messages name a plugin."""
        dist = self.distribution if self.distribution.startswith("(") else f"({self.distribution})"
        return f"{self.name!r} {dist}"

    @property
    def provides(self) -> str:
        parts = [f"algo:{a}" for a in self.algorithms] + [f"env:{e}" for e in self.environments]
        return ", ".join(parts) or "-"


@dataclass
class Registered:
    spec: Any
    plugin: PluginInfo


class PluginManager:
    """Loads plugins and answers "which algorithm/env is this name?"."""

    def __init__(self, *, autoload: bool | None = None, strict: bool | None = None,
                 plugins: Iterable[tuple[str, Any]] = ()) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict if strict is not None else os.environ.get("SAFENET_STRICT_PLUGINS") == "1"
        self.infos: list[PluginInfo] = []
        self.algorithms: dict[str, list[Registered]] = {}
        self.environments: list[Registered] = []
        if autoload is None:
            autoload = os.environ.get("SAFENET_DISABLE_PLUGIN_AUTOLOAD") != "1"
        if autoload:
            self._load_entry_points()
        for modname in [m.strip() for m in os.environ.get("SAFENET_PLUGINS", "").split(",") if m.strip()]:
            self._load_module(modname)
        for name, obj in plugins:
            self.add_plugin(obj, name=name, distribution="(in-process)", version="-")

    # -- loading --------------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        disabled = {x.strip() for x in os.environ.get("SAFENET_DISABLE_PLUGINS", "").split(",") if x.strip()}
        seen: dict[str, str] = {}
        for ep in sorted(md.entry_points(group=GROUP), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            if ep.name in seen and seen[ep.name] != dist_name:
                self._fail(PluginInfo(ep.name, dist_name, version),
                           f"entry point name {ep.name!r} is also used by distribution {seen[ep.name]!r}")
                continue
            seen[ep.name] = dist_name
            info = PluginInfo(ep.name, dist_name, version)
            if ep.name in disabled:
                info.status = "disabled"
                self.infos.append(info)
                continue
            try:
                obj = ep.load()
            except BaseException as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self._fail(info, f"import failed: {type(exc).__name__}: {exc}", exc)
                continue
            self._register(obj, info)

    def _load_module(self, modname: str) -> None:
        import importlib

        info = PluginInfo(modname, "(SAFENET_PLUGINS)", "-")
        try:
            obj = importlib.import_module(modname)
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._fail(info, f"import failed: {type(exc).__name__}: {exc}", exc)
            return
        self._register(obj, info)

    def add_plugin(self, obj: Any, *, name: str, distribution: str = "(in-process)", version: str = "-") -> PluginInfo:
        """Register a plugin object in-process (tests, notebooks, embedding applications)."""
        info = PluginInfo(name, distribution, version)
        self._register(obj, info)
        return info

    def _register(self, obj: Any, info: PluginInfo) -> None:
        if self.pm.is_registered(obj):
            # the same module reached twice (installed and in SAFENET_PLUGINS, or listed twice)
            first = self.pm.get_name(obj)
            info.status, info.error = "disabled", f"already loaded as {first!r}"
            self.infos.append(info)
            return
        hook_errors = hook_checks.hookimpl_errors(self.pm, obj)
        if hook_errors:
            self._fail(info, hook_errors[0])
            return
        try:
            self.pm.register(obj, name=info.name)
            self.pm.check_pending()
            algos = self._call_one(obj, "safenet_algorithms", AlgorithmSpec)
            envs = self._call_one(obj, "safenet_environments", EnvSpec)
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            if self.pm.is_registered(obj):
                self.pm.unregister(obj)
            self._fail(info, f"registration failed: {type(exc).__name__}: {exc}", exc)
            return
        for kind, spec in [*(("algorithm", s) for s in algos), *(("environment", s) for s in envs)]:
            problems = check_spec(spec)
            if problems:
                self.pm.unregister(obj)
                self._fail(info, f"{kind} {getattr(spec, 'name', '?')!r}: {problems[0]}")
                return
        for spec in [*algos, *envs]:
            object.__setattr__(spec, "_plugin", info.label)      # lets spec.load() errors name the plugin
        for spec in algos:
            self.algorithms.setdefault(normalise(spec.name), []).append(Registered(spec, info))
            info.algorithms.append(spec.name)
        for spec in envs:
            self.environments.append(Registered(spec, info))
            info.environments.append(spec.name)
        self.infos.append(info)
        for message in hook_checks.undecorated_hooks(self.pm, obj):
            self._warn(info, message)
        if not self.pm.get_hookcallers(obj) and not info.warnings:
            self._warn(info, "registers nothing: no @safenet.hookimpl function found (does the entry point "
                             "name the module that holds the hooks?)")

    def _call_one(self, obj: Any, hook: str, expected: type) -> list:
        impl = getattr(obj, hook, None)
        if impl is None:
            return []
        caller = self.pm.subset_hook_caller(hook, remove_plugins=[p for p in self.pm.get_plugins() if p is not obj])
        out: list = []
        for result in caller():
            out.extend(hook_checks.check_registration_result(hook, result, expected))
        return out

    def _fail(self, info: PluginInfo, message: str, exc: BaseException | None = None) -> None:
        info.status, info.error = "failed", message
        if exc is not None:
            info.traceback = "".join(traceback.format_exception(exc))
        self.infos.append(info)
        if self.strict:
            raise RegistryError(f"plugin {info.label}: {message}") from exc
        _emit(f"safenet plugin {info.label} failed: {message}")

    def _warn(self, info: PluginInfo, message: str) -> None:
        """A mistake that does not stop the plugin from loading (shown by `safenet plugins` and doctor)."""
        info.warnings.append(message)
        _emit(f"safenet plugin {info.label}: {message}")

    @property
    def failed(self) -> list[PluginInfo]:
        return [i for i in self.infos if i.status == "failed"]

    @property
    def hook(self):
        return self.pm.hook

    # -- lookup ---------------------------------------------------------------------------------
    def _failure_note(self) -> str:
        if not self.failed:
            return ""
        names = ", ".join(f"{i.name} ({i.error})" for i in self.failed)
        return f"; plugins that failed to load: {names}"

    def algorithm(self, name: str) -> AlgorithmSpec:
        dist, _, bare = name.rpartition(":")
        key = normalise(bare)
        entries = self.algorithms.get(key, [])
        if dist:
            entries = [e for e in entries if normalise(e.plugin.distribution) == normalise(dist)
                       or normalise(e.plugin.name) == normalise(dist)]
        if not entries:
            choices = sorted(self.algorithm_names())
            near = close_matches(key, [normalise(c) for c in choices])
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise RegistryError(f"unknown algorithm {name!r}{hint}; valid choices: "
                                f"{', '.join(choices) or '(none installed)'}{self._failure_note()}")
        if len(entries) > 1:
            forms = ", ".join(choice_forms(entries))
            raise RegistryError(f"algorithm {name!r} is provided by several plugins; choose one of: {forms}")
        return entries[0].spec

    def environment(self, name: str) -> tuple[EnvSpec, dict[str, str]]:
        """The env spec for ``name`` and the config values the name implies (pattern groups)."""
        dist, _, bare = name.rpartition(":")
        found: list[tuple[Registered, dict]] = []
        for reg in self.environments:
            if dist and normalise(dist) not in (normalise(reg.plugin.distribution), normalise(reg.plugin.name)):
                continue
            m = reg.spec.match(bare)
            if m is not None:
                found.append((reg, m))
        exact = [(r, m) for r, m in found if m == {} and normalise(r.spec.name) == normalise(bare)]
        found = exact or found
        if not found:
            choices = sorted(self.environment_names())
            near = close_matches(normalise(bare), [normalise(c) for c in choices])
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise RegistryError(f"unknown environment {name!r}{hint}; valid choices: "
                                f"{', '.join(choices) or '(none installed)'}{self._failure_note()}")
        if len(found) > 1:
            forms = ", ".join(choice_forms([r for r, _ in found]))
            raise RegistryError(f"environment {name!r} is provided by several plugins; choose one of: {forms}")
        reg, implied = found[0]
        return reg.spec, implied

    def algorithm_names(self) -> list[str]:
        return sorted({e.spec.name for entries in self.algorithms.values() for e in entries})

    def environment_names(self) -> list[str]:
        return sorted({r.spec.name for r in self.environments})

    def plugin_of(self, spec: Any) -> PluginInfo | None:
        for entries in [*self.algorithms.values(), self.environments]:
            for e in entries:
                if e.spec is spec:
                    return e.plugin
        return None


def choice_forms(entries: list[Registered]) -> list[str]:
    """``DIST:NAME`` for each of several plugins providing one name (``PLUGIN:NAME`` where the
    distribution does not tell them apart, e.g. two SAFENET_PLUGINS modules)."""
    dists = [normalise(e.plugin.distribution) for e in entries]
    return [f"{e.plugin.distribution if dists.count(d) == 1 else e.plugin.name}:{e.spec.name}"
            for e, d in zip(entries, dists)]


_MANAGER: PluginManager | None = None


def get_plugin_manager(refresh: bool = False) -> PluginManager:
    """The process-wide plugin manager (built on first use)."""
    global _MANAGER
    if _MANAGER is None or refresh:
        _MANAGER = PluginManager()
    return _MANAGER
