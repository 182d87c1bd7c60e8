"""Shared fixtures of the core test suite.

Nothing here is autouse: tests ask for what they need.

* ``toy_pm``: a :class:`~safenet.plugins.PluginManager` with no entry points, holding the ``sac``
  algorithm plugin and the ``toy_line`` env of :mod:`safenet.testing` (in-process, so the result
  does not depend on what else is installed);
* ``cli_env``: the environment of an in-process ``safenet`` command (``SAFENET_PLUGINS`` pointing at
  :mod:`safenet.testing`, a fresh process-wide plugin manager, the working folder a temp folder).
"""
from __future__ import annotations

import warnings

import pytest

import safenet.plugins as plugins_mod
import safenet.testing
from safenet.plugins import PluginManager


def _clean_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SAFENET_PLUGINS", "SAFENET_STRICT_PLUGINS", "SAFENET_DISABLE_PLUGIN_AUTOLOAD",
                "SAFENET_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def clean_plugin_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No SAFENET_* plugin variables from the caller's shell leak into the test."""
    _clean_plugin_env(monkeypatch)
    return monkeypatch


@pytest.fixture
def toy_pm(monkeypatch: pytest.MonkeyPatch) -> PluginManager:
    import safenet_scalable_ac.plugin as sac_plugin

    _clean_plugin_env(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither plugin may fail to register
        return PluginManager(autoload=False, strict=True,
                             plugins=[("safenet_scalable_ac", sac_plugin), ("toy", safenet.testing)])


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path):
    _clean_plugin_env(monkeypatch)
    monkeypatch.setenv("SAFENET_PLUGINS", "safenet.testing")
    monkeypatch.setattr(plugins_mod, "_MANAGER", None)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    plugins_mod._MANAGER = None
