"""``safenet doctor``: every problem of the installation, reported together.

Nothing here stops at the first problem: each check appends one line per problem, and the command
exits nonzero only after printing them all. Checked:

* plugins that failed to load, and mistakes that did not stop a plugin loading (a hook function
  without ``@safenet.hookimpl``, a module that registers nothing);
* entry points declared in a group whose name is a near miss of ``safenet`` (never loaded);
* algorithm and environment names provided by several plugins;
* every factory imports and fulfils the contract;
* every compatible algorithm/environment pair composes its default config (and builds, with ``--build``);
* every preset in ``./configs`` parses.
"""
from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SafenetError
from .hook_checks import GROUP, near_miss_groups
from .plugins import PluginManager, Registered, choice_forms


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    plugins: int = 0
    failed: int = 0
    pairs: int = 0
    presets: int = 0

    def summary(self) -> str:
        return (f"plugins: {self.plugins} ({self.failed} failed); algorithm/environment pairs composed: "
                f"{self.pairs}; presets read: {self.presets}")


def plugin_problems(pm: PluginManager) -> list[str]:
    out = [f"plugin {i.label} failed: {i.error}" for i in pm.failed]
    for i in pm.infos:
        out += [f"plugin {i.label}: {w}" for w in i.warnings]
    return out


def entry_point_problems() -> list[str]:
    """Entry points in a near-miss group: safenet never sees them."""
    out = []
    eps = md.entry_points()
    for group in near_miss_groups(eps.groups):
        for ep in eps.select(group=group):
            dist = getattr(getattr(ep, "dist", None), "metadata", {}) or {}
            owner = dist.get("Name", "?") if hasattr(dist, "get") else "?"
            out.append(f"entry point {ep.name!r} of distribution {owner!r} is in group {group!r}, which safenet "
                       f"never reads; declare it under [project.entry-points.{GROUP}] and reinstall")
    return out


def clash_problems(pm: PluginManager) -> list[str]:
    out = []
    for entries in pm.algorithms.values():
        if len(entries) > 1:
            forms = ", ".join(choice_forms(entries))
            out.append(f"algorithm {entries[0].spec.name!r} is provided by several plugins ({forms}); "
                       f"users must type one of these forms")
    by_name: dict[str, list[Registered]] = {}
    for reg in pm.environments:
        by_name.setdefault(reg.spec.name.lower().replace("-", "_"), []).append(reg)
    for regs in by_name.values():
        if len(regs) > 1:
            forms = ", ".join(choice_forms(regs))
            out.append(f"environment {regs[0].spec.name!r} is provided by several plugins ({forms}); "
                       f"users must type one of these forms")
    return out


def factory_problems(pm: PluginManager) -> tuple[list[str], set[int]]:
    """Import every factory; the problems and the ``id`` of each spec whose factory is broken."""
    out, broken = [], set()
    for entries in [*pm.algorithms.values(), pm.environments]:
        for reg in entries:
            try:
                reg.spec.load()
            except SafenetError as exc:
                out.append(str(exc))
                broken.add(id(reg.spec))
    return out, broken


def _names(groups: list[list[Registered]]) -> dict[int, str]:
    """What a user types to pick each spec: its name, or a ``DIST:NAME`` form when the name clashes."""
    out = {}
    for regs in groups:
        forms = choice_forms(regs) if len(regs) > 1 else [regs[0].spec.name]
        out.update({id(r.spec): f for r, f in zip(regs, forms)})
    return out


def pair_problems(pm: PluginManager, build: bool, broken: set[int] = frozenset()) -> tuple[int, list[str]]:
    """Compose (and optionally build) every compatible pair; identical errors are reported once."""
    from .trainer import Selection, make_game

    errors: dict[str, list[tuple[str, str]]] = {}
    pairs = 0
    by_env: dict[str, list[Registered]] = {}
    for reg in pm.environments:
        by_env.setdefault(reg.spec.name.lower().replace("-", "_"), []).append(reg)
    typed = _names([*pm.algorithms.values(), *by_env.values()])
    for entries in pm.algorithms.values():
        for areg in entries:
            for ereg in pm.environments:
                espec = ereg.spec
                if espec.pattern and espec.match(espec.name) is None:
                    continue                              # a family without a concrete default name
                if areg.spec.incompatibility(espec.tags):
                    continue
                algo_name, env_name = typed[id(areg.spec)], typed[id(espec)]
                try:
                    sel = Selection.resolve(algo_name, env_name, pm)
                    cfg = sel.compose()
                    pairs += 1
                    if build and id(espec) not in broken:     # a broken factory is reported once, above
                        make_game(sel, cfg, 1, 0).close()
                except Exception as exc:  # noqa: BLE001 - report every problem, not the first
                    message = (str(exc).strip().splitlines() or [""])[0]
                    errors.setdefault(f"{type(exc).__name__}: {message}", []).append((algo_name, env_name))
    out = []
    for message, where in errors.items():
        grouped: dict[str, list[str]] = {}
        for algo_name, env_name in where:
            grouped.setdefault(env_name, []).append(algo_name)
        pairs_text = "; ".join(f"{', '.join(algos)} on {env_name}" for env_name, algos in grouped.items())
        out.append(f"{pairs_text}: {message}")
    return pairs, out


def preset_problems(folder: Path | None = None) -> tuple[int, list[str]]:
    """Parse every preset ``--preset`` can find: ``configs/`` of ``folder`` (default: the current
    folder) and of the safenet checkout, so the check is the same from any directory."""
    from .config import PACKAGE_ROOT, load_yaml

    files = {}
    for base in (PACKAGE_ROOT, folder or Path.cwd()):
        for p in sorted((base / "configs").glob("*.yaml")):
            files[p.resolve()] = p
    out = []
    for path in sorted(files.values()):
        try:
            load_yaml(path, f"preset {path.stem!r}")
        except SafenetError as exc:
            out.append(str(exc))
    return len(files), out


def diagnose(pm: PluginManager, *, build: bool = False, folder: Path | None = None) -> Report:
    report = Report(plugins=len(pm.infos), failed=len(pm.failed))
    report.problems += plugin_problems(pm)
    report.problems += entry_point_problems()
    report.problems += clash_problems(pm)
    found, broken = factory_problems(pm)
    report.problems += found
    report.pairs, found = pair_problems(pm, build, broken)
    report.problems += found
    report.presets, found = preset_problems(folder)
    report.problems += found
    return report
