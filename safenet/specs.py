"""What plugins register: small frozen dataclasses returned by the registration hooks."""
from __future__ import annotations

import dataclasses
import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import RegistryError

PLUGIN_API_VERSION = 1


def import_string(target: str) -> Any:
    """Import ``"package.module:attr"`` (the factory format of specs)."""
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise RegistryError(f"factory {target!r} must look like 'package.module:attribute'")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load_factory(spec: Any, kind: str) -> Any:
    """Import ``spec.factory`` and check it against the contract; a :class:`RegistryError` names the
    plugin, the spec and what to fix (one line, no traceback)."""
    from .spec_checks import check_factory_object

    where = f"{kind} {spec.name!r}" + (f" of plugin {spec._plugin}" if getattr(spec, "_plugin", None) else "")
    try:
        obj = import_string(spec.factory)
    except RegistryError as exc:
        raise RegistryError(f"{where}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the plugin's module fails to import: say so in one line
        raise RegistryError(f"{where}: cannot import factory {spec.factory!r}: {type(exc).__name__}: {exc}") from exc
    why = check_factory_object(kind, obj)
    if why:
        raise RegistryError(f"{where}: factory {spec.factory!r}: {why}")
    return obj


def normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _check_config(kind: str, name: str, config: Any) -> None:
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        raise RegistryError(f"{kind} {name!r}: config must be a dataclass type, got {config!r}")


@dataclass(frozen=True)
class AlgorithmSpec:
    """An algorithm a plugin offers.

    ``factory`` names an :class:`~safenet.algorithm.Algorithm` subclass; it is constructed as
    ``cls(game_spec, cfg, seed=..., device=...)`` with ``cfg`` an instance of ``config``.
    ``requires`` lists env tags that must be present (see ``safenet.game.KNOWN_TAGS``).
    ``overrides`` suggests values for other config sections (e.g. ``{"trainer": {"n_envs": 16}}``).
    ``devices`` lists the torch device types (``cpu``, ``cuda``, ``mps``) the algorithm keeps its
    parameters, optimizer state and updates on when ``trainer.device`` names one; any other device
    is refused before the run starts. The default, ``("cpu",)``, suits algorithms that never move
    to an accelerator; the first entry is the one the refusal suggests.
    """

    name: str
    factory: str
    config: type
    summary: str = ""
    requires: frozenset[str] = field(default_factory=frozenset)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    devices: tuple[str, ...] = ("cpu",)
    api_version: int = PLUGIN_API_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "requires", frozenset(self.requires))
        object.__setattr__(self, "devices", tuple(self.devices))
        _check_config("algorithm", self.name, self.config)
        unknown = [d for d in self.devices if d not in ("cpu", "cuda", "mps")]
        if not self.devices or unknown:
            raise RegistryError(f"algorithm {self.name!r}: devices must list some of cpu, cuda, mps; got {self.devices!r}")

    def load(self) -> type:
        """The algorithm class, imported now and checked against the contract."""
        return load_factory(self, "algorithm")

    def load_raw(self) -> Any:
        return import_string(self.factory)

    def incompatibility(self, env_tags: frozenset[str]) -> str | None:
        """Why this algorithm cannot run on an env with ``env_tags`` (None when it can)."""
        missing = sorted(self.requires - set(env_tags))
        if not missing:
            return None
        from .game import KNOWN_TAGS

        why = "; ".join(f"{t}: {KNOWN_TAGS.get(t, t)}" for t in missing)
        return f"algorithm {self.name!r} needs an environment with {', '.join(missing)} ({why})"


@dataclass(frozen=True)
class EnvSpec:
    """An environment a plugin offers.

    ``factory`` names ``make(cfg, num_envs, seed) -> BatchedGame`` where ``cfg`` is an instance of
    ``config``. ``pattern`` (a regular expression) lets one spec serve a family of names; its named
    groups become env config values (``grid_wireless_(?P<rows>\\d+)x(?P<cols>\\d+)``).
    ``tags`` are the tags the built game will have (checked before building).
    """

    name: str
    factory: str
    config: type
    summary: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    pattern: str | None = None
    parallel_env: str | None = None
    api_version: int = PLUGIN_API_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", frozenset(self.tags))
        _check_config("environment", self.name, self.config)
        if self.pattern is not None:
            re.compile(self.pattern)

    def match(self, name: str) -> dict[str, str] | None:
        """Config values implied by ``name`` ({} for an exact match, None for no match)."""
        if normalise(name) == normalise(self.name):
            return {}
        if self.pattern:
            # case-insensitive, and '-'/'_' equivalent: try the name as typed and in both spellings
            for candidate in (name.strip(), normalise(name), normalise(name).replace("_", "-")):
                m = re.fullmatch(self.pattern, candidate, flags=re.IGNORECASE)
                if m:
                    return {k: v for k, v in m.groupdict().items() if v is not None}
        return None

    def load(self):
        """The env factory, imported now and checked against the contract."""
        return load_factory(self, "environment")

    def load_raw(self) -> Any:
        return import_string(self.factory)
