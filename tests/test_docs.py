"""The plugin docs stay in step with the code.

* every hook specification in ``safenet.hookspecs`` has a section in ``docs/hooks.md`` whose
  signature lists exactly the spec's parameters, and no section documents a hook that is gone;
* the plugin-control environment variables of ``safenet.plugins`` are all explained in
  ``docs/writing-plugins.md``;
* relative links between the docs point at files and headings that exist;
* every preset in ``configs/`` shows a ``safenet train ... --preset`` command in its header, and
  each such command resolves to a valid config.
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from safenet import hookspecs, plugins

DOCS = Path(__file__).resolve().parents[1] / "docs"
HOOKS_MD = DOCS / "hooks.md"
GUIDE_MD = DOCS / "writing-plugins.md"
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$")


def hookspec_functions() -> dict[str, object]:
    marker = f"{hookspecs.PROJECT}_spec"
    return {name: fn for name, fn in vars(hookspecs).items()
            if name.startswith("safenet_") and inspect.isfunction(fn) and hasattr(fn, marker)}


def sections(text: str) -> dict[str, str]:
    """Heading text (backticks stripped) -> the text up to the next heading of the same or a higher level.

    Lines inside fenced code blocks are never headings (``# comment`` in a code sample).
    """
    found: list[tuple[int, int, int, str]] = []      # (start, end, level, title)
    pos, fenced = 0, False
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            m = HEADING.match(line)
            if m:
                found.append((pos, pos + len(line), len(m.group(1)), m.group(2).strip("` ")))
        pos += len(line)
    out = {}
    for k, (_, end, level, title) in enumerate(found):
        stop = next((s for s, _, lv, _ in found[k + 1:] if lv <= level), len(text))
        out[title] = text[end:stop]
    return out


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_hookspecs_exist():
    assert len(hookspec_functions()) >= 7, "safenet.hookspecs lost its hook specifications?"


@pytest.mark.parametrize("name", sorted(hookspec_functions()))
def test_every_hookspec_is_documented(name):
    documented = sections(HOOKS_MD.read_text())
    assert name in documented, f"hook {name} has no '### {name}' section in docs/hooks.md"
    body = documented[name]
    match = re.search(rf"def {name}\((.*?)\)", body, re.S)
    assert match, f"docs/hooks.md: the {name} section shows no `def {name}(...)` signature"
    params = [p.split(":")[0].strip() for p in re.split(r",(?![^\[]*\])", match.group(1)) if p.strip()]
    expected = list(inspect.signature(hookspec_functions()[name]).parameters)
    assert params == expected, f"docs/hooks.md: {name} documented with {params}, the spec has {expected}"
    assert "**When:**" in body and "**Return:**" in body, f"docs/hooks.md: say when {name} is called and what it returns"


def test_no_stale_hook_sections():
    stale = [h for h in sections(HOOKS_MD.read_text()) if h.startswith("safenet_") and h not in hookspec_functions()]
    assert not stale, f"docs/hooks.md documents hooks that safenet.hookspecs does not define: {stale}"


def test_plugin_environment_variables_are_explained():
    variables = set(re.findall(r"SAFENET_[A-Z_]+", plugins.__doc__ or ""))
    assert variables, "safenet.plugins no longer documents its environment variables?"
    guide = GUIDE_MD.read_text()
    missing = sorted(v for v in variables if v not in guide)
    assert not missing, f"docs/writing-plugins.md does not explain {missing}"


@pytest.mark.parametrize("doc", [HOOKS_MD, GUIDE_MD], ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    repo = DOCS.parent
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists() or not file.is_relative_to(repo):
            bad.append(target)
        elif anchor and file.suffix == ".md":
            if anchor not in {slug(h) for h in sections(file.read_text())}:
                bad.append(target)
    assert not bad, f"{doc.name}: broken links {bad}"


# ------------------------------------------------------------------------------------------------
# every `safenet train` command written in a preset's header resolves to a valid config
# ------------------------------------------------------------------------------------------------
CONFIGS = DOCS.parent / "configs"
TRAIN_CMD = re.compile(r"safenet train --algo (\S+) --env (\S+) --preset (\S+)(.*)")


def preset_commands() -> list[tuple[str, str, str, str, list[str]]]:
    out = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        text = "\n".join(line.lstrip("# ").rstrip() for line in path.read_text().splitlines()
                         if line.startswith("#"))
        text = re.sub(r"\\\s*\n\s*", " ", text)                 # join continued lines
        for m in TRAIN_CMD.finditer(text):
            rest = [tok for tok in m.group(4).split() if "=" in tok and not tok.startswith("(")]
            out.append((path.name, m.group(1), m.group(2), m.group(3), rest))
    return out


def test_presets_show_how_to_use_them():
    named = {c[0] for c in preset_commands()}
    missing = sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name not in named)
    assert not missing, f"presets without a `safenet train ... --preset` line in their header: {missing}"


@pytest.mark.parametrize("name,algo,env,preset,overrides", preset_commands(),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_preset_commands_resolve(name, algo, env, preset, overrides, tmp_path):
    from safenet.trainer import Selection

    sel = Selection.resolve(algo, env)
    cfg = sel.compose(preset=preset, overrides=[f"run.dir={tmp_path}", *overrides])
    assert cfg.trainer.total_steps > 0
