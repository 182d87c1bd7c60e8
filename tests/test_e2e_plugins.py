"""End to end: third-party distributions found through their real entry points by the real CLI.

Each distribution is built and installed with pip into its own temporary folder (``--target``, no
dependencies, no build isolation, no index: nothing is downloaded and the main venv is untouched),
so the ``.dist-info/entry_points.txt`` that safenet reads is the one pip wrote. The ``safenet``
command then runs in a subprocess with that folder on ``PYTHONPATH``.

* ``examples/plugin-template`` (``safenet-template``): listed with its version and algorithm, and
  ``independent-reinforce`` trains on ``toy_line`` (from ``SAFENET_PLUGINS=safenet.testing``);
* ``safenet-broken`` (written here): its plugin module raises on import. It must show as failed
  with its error, must not stop other plugins from working, must be named when a name is
  unknown, and must be fatal under ``SAFENET_STRICT_PLUGINS=1``.
"""
from __future__ import annotations

import csv
import importlib.metadata as md
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# pip builds the distributions with the venv's own setuptools (no build isolation, no index)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("setuptools") is None,
                                reason="setuptools is not installed in this environment (needed to build test wheels)")

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "examples" / "plugin-template"
CLI = [sys.executable, "-m", "safenet.cli"]
TIMEOUT = 180

#: keep runs short and quiet in every `safenet train` below
QUICK = ["run.progress=none", "run.tensorboard=false", "trainer.n_envs=4", "trainer.eval_every_steps=0",
         "trainer.eval_episodes=4"]


def pip_install_target(src: Path, target: Path) -> None:
    """Build ``src`` and install it (alone) into ``target``, as pip would for a user."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--no-cache-dir", "--disable-pip-version-check", "--quiet", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=TIMEOUT)
    if proc.returncode != 0:
        pytest.fail(f"pip install of {src} failed:\n{proc.stdout}\n{proc.stderr}")


def safenet(*args: str, paths: list[Path], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter that sees the distributions installed in ``paths``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SAFENET_") and k != "PYTHONPATH"}
    environ["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    environ.update(env)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=environ, timeout=TIMEOUT)


def plugin_list(proc: subprocess.CompletedProcess) -> dict[str, dict]:
    assert proc.returncode == 0, proc.stderr
    return {p["name"]: p for p in json.loads(proc.stdout)}


def has_entry_point(name: str) -> bool:
    return any(ep.name == name for ep in md.entry_points(group="safenet"))


@pytest.fixture(scope="module")
def template_site(tmp_path_factory) -> Path:
    """``safenet-template`` installed from a clean copy (pip builds in the source tree)."""
    base = tmp_path_factory.mktemp("template")
    src = base / "src"
    shutil.copytree(TEMPLATE, src, ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache"))
    site = base / "site"
    pip_install_target(src, site)
    return site


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory) -> Path:
    """``safenet-broken``: a well-formed distribution whose plugin module raises when imported."""
    base = tmp_path_factory.mktemp("broken")
    src = base / "src"
    (src / "safenet_broken").mkdir(parents=True)
    (src / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "safenet-broken"
        version = "0.0.7"
        dependencies = ["safenet>=0.1"]

        [project.entry-points.safenet]
        safenet_broken = "safenet_broken.plugin"

        [tool.setuptools.packages.find]
        include = ["safenet_broken*"]
        """))
    (src / "safenet_broken" / "__init__.py").write_text("")
    (src / "safenet_broken" / "plugin.py").write_text('raise RuntimeError("boom")\n')
    site = base / "site"
    pip_install_target(src, site)
    return site


def test_python_m_cli_works(tmp_path):
    proc = safenet("--version", paths=[], cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("safenet "), proc.stderr


def test_template_is_listed_through_its_entry_point(template_site, tmp_path):
    (dist_info,) = template_site.glob("safenet_template-*.dist-info")
    assert (dist_info / "entry_points.txt").read_text().split() == [
        "[safenet]", "safenet_template", "=", "safenet_template.plugin"]
    plugins = plugin_list(safenet("plugins", "--json", paths=[template_site], cwd=tmp_path))
    info = plugins["safenet_template"]
    assert info["distribution"] == "safenet-template"
    assert info["version"] == "0.1.0"
    assert info["status"] == "active" and info["error"] is None
    assert info["algorithms"] == ["independent-reinforce"] and info["environments"] == []


def test_template_registration_stays_light(template_site, tmp_path):
    """Listing plugins imports the template's plugin module, not its algorithm (nor torch)."""
    code = ("import sys; from safenet.plugins import get_plugin_manager; pm = get_plugin_manager(); "
            "print(pm.algorithm_names(), 'safenet_template.algorithm' in sys.modules, 'torch' in sys.modules)")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SAFENET_")}
    environ.update(PYTHONPATH=str(template_site), SAFENET_DISABLE_PLUGINS="safenet_grid,safenet_scalable_ac")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=environ, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("]")[-1].split() == ["False", "False"], proc.stdout
    assert "independent-reinforce" in proc.stdout


def test_template_trains_from_the_cli(template_site, tmp_path):
    proc = safenet("train", "--algo", "independent-reinforce", "--env", "toy_line",
                   "trainer.total_steps=1024", f"run.dir={tmp_path / 'runs'}", "run.name=tpl", *QUICK,
                   paths=[template_site], cwd=tmp_path, SAFENET_PLUGINS="safenet.testing")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = tmp_path / "runs" / "tpl"
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and int(rows[-1]["env_steps"]) >= 1024
    assert {"rollout/ep_return", "train/loss_policy", "comm/floats_per_step", "eval/ep_return"} <= set(rows[-1])
    meta = json.loads((run / "meta.json").read_text())
    assert meta["algo"] == "independent-reinforce" and meta["algo_plugin"] == "safenet-template"
    assert meta["plugins"]["safenet-template"] == "0.1.0"
    assert list((run / "checkpoints").glob("ckpt_*.pt"))


def test_broken_plugin_is_listed_as_failed(broken_site, template_site, tmp_path):
    proc = safenet("plugins", "--json", paths=[broken_site, template_site], cwd=tmp_path)
    plugins = plugin_list(proc)
    info = plugins["safenet_broken"]
    assert info["status"] == "failed" and info["distribution"] == "safenet-broken" and info["version"] == "0.0.7"
    assert "RuntimeError: boom" in info["error"]
    assert info["algorithms"] == [] and info["environments"] == []
    assert plugins["safenet_template"]["status"] == "active"            # the others still load
    assert "safenet_broken" in proc.stderr and "boom" in proc.stderr     # one warning on stderr

    proc = safenet("plugins", "--traceback", paths=[broken_site], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--- safenet_broken (safenet-broken) ---" in proc.stdout
    assert 'raise RuntimeError("boom")' in proc.stdout and "RuntimeError: boom" in proc.stdout


@pytest.mark.skipif(not has_entry_point("safenet_scalable_ac"), reason="safenet-scalable-ac is not installed")
def test_training_works_with_a_broken_plugin_installed(broken_site, tmp_path):
    proc = safenet("train", "--algo", "sac", "--env", "toy_line", "trainer.total_steps=256",
                   f"run.dir={tmp_path / 'runs'}", "run.name=sac", *QUICK,
                   paths=[broken_site], cwd=tmp_path, SAFENET_PLUGINS="safenet.testing")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "runs" / "sac" / "metrics.csv").is_file()


def test_unknown_name_mentions_the_failed_plugin(broken_site, tmp_path):
    proc = safenet("train", "--algo", "no-such-algo", "--env", "toy_line", f"run.dir={tmp_path / 'runs'}",
                   paths=[broken_site], cwd=tmp_path, SAFENET_PLUGINS="safenet.testing")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("safenet train: error: unknown algorithm 'no-such-algo'")
    assert "plugins that failed to load" in error and "safenet_broken" in error and "boom" in error
    assert not (tmp_path / "runs").exists()


def test_strict_mode_makes_the_failure_fatal(broken_site, tmp_path):
    proc = safenet("plugins", paths=[broken_site], cwd=tmp_path, SAFENET_STRICT_PLUGINS="1")
    assert proc.returncode == 2
    assert "safenet_broken" in proc.stderr and "RuntimeError: boom" in proc.stderr
    # ...and disabling the broken entry point by name brings the CLI back
    proc = safenet("plugins", "--json", paths=[broken_site], cwd=tmp_path,
                   SAFENET_STRICT_PLUGINS="1", SAFENET_DISABLE_PLUGINS="safenet_broken")
    assert plugin_list(proc)["safenet_broken"]["status"] == "disabled"
