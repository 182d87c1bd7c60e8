"""One test per plugin-author mistake, each with a deliberately broken plugin from ``tests/broken_plugins``.

Each mistake must give a one-line message naming the plugin and what to fix — at load time where
that is possible without importing the plugin's algorithm module, else when a run selects it, in
``safenet doctor`` and in ``check_algorithm``.
"""
from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import safenet.plugins as plugins_mod
from safenet.plugins import PluginManager
from safenet.roundtrip import RoundTripError
from safenet.testing import assert_one_line_error, check_algorithm, run_cli
from safenet.trainer import Selection, start_run

BROKEN = Path(__file__).resolve().parent / "broken_plugins"


@pytest.fixture
def broken(clean_plugin_env, monkeypatch):
    """The broken plugins are importable; nothing from the caller's shell leaks in."""
    monkeypatch.syspath_prepend(str(BROKEN))
    return monkeypatch


def load(*modules: str) -> dict:
    """A plugin manager holding toy_line and ``modules`` (as SAFENET_PLUGINS would load them); infos by name."""
    os.environ["SAFENET_PLUGINS"] = ",".join(["safenet.testing", *modules])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", plugins_mod.PluginWarning)
            pm = PluginManager(autoload=False)
    finally:
        del os.environ["SAFENET_PLUGINS"]
    return pm, {i.name: i for i in pm.infos}


def failed_with(module: str, *fragments: str) -> str:
    pm, infos = load(module)
    info = infos[module]
    assert info.status == "failed", info
    assert "\n" not in info.error
    for fragment in fragments:
        assert fragment in info.error, info.error
    assert infos["safenet.testing"].status == "active"          # the rest keeps working
    return info.error


# ------------------------------------------------------------------------------------------------
# spec validation at registration
# ------------------------------------------------------------------------------------------------

def test_config_default_of_the_wrong_type_fails_the_plugin_at_load(broken, capsys, cli_env):
    error = failed_with("bp_wrong_default_type", "algorithm 'wrong-default'", "config.lr", "0.03", "int")
    assert "does not match its declared type" in error
    # and the commands that would have died in omegaconf name the cause in one line
    broken.setenv("SAFENET_PLUGINS", "safenet.testing,bp_wrong_default_type")
    broken.setenv("SAFENET_DISABLE_PLUGIN_AUTOLOAD", "1")
    with pytest.warns(plugins_mod.PluginWarning, match="config.lr"):
        rc, out, err = run_cli(capsys, "config", "--algo", "wrong-default", "--env", "toy_line")
    assert rc == 2
    line = assert_one_line_error(err, "config")
    assert "bp_wrong_default_type" in line and "config.lr" in line


def test_config_attribute_without_annotation_fails_the_plugin(broken):
    error = failed_with("bp_unannotated_field", "algorithm 'unannotated'", "config.lr", "no type annotation")
    assert "lr: float = 0.03" in error                       # says what to write


def test_factory_naming_a_missing_module_fails_the_plugin_at_load(broken):
    failed_with("bp_wrong_factory_module", "algorithm 'nowhere'", "factory", "no module named 'bp_tabulr'")


def test_factory_naming_a_missing_attribute_fails_the_plugin_without_importing_the_module(broken):
    sys.modules.pop("bp_lazy_algo", None)
    error = failed_with("bp_wrong_factory_attr", "algorithm 'misnamed'", "factory", "'LazyAlgorithm'")
    assert "did you mean 'LazyAlgo'" in error
    assert "bp_lazy_algo" not in sys.modules                 # found statically: factories stay lazy


def test_bad_algorithm_name_fails_the_plugin(broken):
    error = failed_with("bp_bad_name", "'Bad Name!'", "name", "lower-case letters")
    assert "'bad-name'" in error                             # a suggestion


def test_forgotten_abstract_method_is_a_one_line_error_when_selected(broken, capsys, cli_env):
    sys.modules.pop("bp_missing_abstract_algo", None)
    broken.setenv("SAFENET_PLUGINS", "safenet.testing,bp_missing_abstract")
    broken.setenv("SAFENET_DISABLE_PLUGIN_AUTOLOAD", "1")
    rc, out, err_text = run_cli(capsys, "train", "--algo", "no-update", "--env", "toy_line", "trainer.total_steps=8")
    assert rc == 2
    line = assert_one_line_error(err_text, "train")
    assert "algorithm 'no-update' of plugin 'bp_missing_abstract' (SAFENET_PLUGINS)" in line
    assert "does not implement the abstract method(s) update" in line
    assert not list(cli_env.glob("runs/*"))                  # refused before a run directory was made
    # once the module is imported, the same mistake fails the plugin at load
    assert "bp_missing_abstract_algo" in sys.modules
    failed_with("bp_missing_abstract", "algorithm 'no-update'", "abstract method(s) update")


# ------------------------------------------------------------------------------------------------
# hooks
# ------------------------------------------------------------------------------------------------

def test_hook_returning_a_dict_gets_a_clear_message(broken):
    failed_with("bp_returns_dict", "safenet_algorithms returned a dict", "return a list of AlgorithmSpec")


def test_hook_returning_one_spec_gets_a_clear_message(broken):
    failed_with("bp_returns_one_spec", "safenet_environments returned one EnvSpec, not a list", "return [EnvSpec(...)]")


def test_hook_name_typo_says_did_you_mean(broken):
    failed_with("bp_hook_typo", "safenet_algorithm is marked @safenet.hookimpl but is not a safenet hook",
                "did you mean 'safenet_algorithms'")


def test_hook_without_hookimpl_is_a_warning(broken):
    with pytest.warns(plugins_mod.PluginWarning, match="no @safenet.hookimpl decorator"):
        PluginManager(autoload=False, plugins=[("bp_no_hookimpl", __import__("bp_no_hookimpl"))])
    _, infos = load("bp_no_hookimpl")
    info = infos["bp_no_hookimpl"]
    assert info.status == "active" and info.provides == "-"
    assert info.warnings == ["function safenet_algorithms has no @safenet.hookimpl decorator, so safenet ignores "
                             "it; decorate it with @safenet.hookimpl"]


def test_module_that_registers_nothing_is_a_warning(broken):
    _, infos = load("bp_registers_nothing")
    assert infos["bp_registers_nothing"].status == "active"
    assert "registers nothing" in infos["bp_registers_nothing"].warnings[0]
    _, infos = load("bp_tabular")
    assert infos["bp_tabular"].warnings == []                # a working plugin gets no warning


def test_load_warnings_are_one_clean_line_each(broken):
    modules = ["bp_hook_typo", "bp_wrong_default_type", "bp_no_hookimpl"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BROKEN), os.environ.get("PYTHONPATH", "")]),
           "SAFENET_PLUGINS": ",".join(["safenet.testing", *modules]), "SAFENET_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run([sys.executable, "-m", "safenet.cli", "plugins", "--json"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == len(modules), proc.stderr           # no source lines, no "warnings.warn(" echoes
    for module, line in zip(modules, lines):
        assert line.startswith(f"safenet: warning: safenet plugin '{module}' (SAFENET_PLUGINS)"), line
    assert "did you mean 'safenet_algorithms'" in lines[0] and "config.lr" in lines[1]


# ------------------------------------------------------------------------------------------------
# state round trip: check_algorithm and the first checkpoint of `safenet train`
# ------------------------------------------------------------------------------------------------

def test_check_algorithm_passes_a_plugin_whose_state_round_trips(broken, tmp_path):
    pm, _ = load("bp_tabular")
    final = check_algorithm("tabular-good", "toy_line", tmp_path, pm=pm)
    assert final["iteration"] == 2


def test_check_algorithm_fails_a_plugin_that_forgets_state_dict(broken, tmp_path):
    pm, _ = load("bp_tabular")
    with pytest.raises(AssertionError) as err:
        check_algorithm("tabular-forgetful", "toy_line", tmp_path, pm=pm)
    msg = str(err.value)
    assert "TabularForgetful.state_dict() returned nothing" in msg and "implement state_dict()" in msg


def test_check_algorithm_fails_numpy_arrays_in_the_state(broken, tmp_path):
    pm, _ = load("bp_tabular")
    with pytest.raises(AssertionError) as err:
        check_algorithm("tabular-numpy", "toy_line", tmp_path, pm=pm)
    msg = str(err.value)
    assert "weights_only=True" in msg and "numpy.ndarray" in msg and "['algo']['table']" in msg
    assert "torch.as_tensor" in msg


def test_check_algorithm_fails_state_that_misses_what_act_uses(broken, tmp_path):
    pm, _ = load("bp_tabular")
    with pytest.raises(AssertionError, match=r"leave out state that act\(\) uses \(saved keys: table0\)"):
        check_algorithm("tabular-half", "toy_line", tmp_path, pm=pm)


def test_train_checks_its_first_checkpoint(broken, tmp_path, capsys, cli_env):
    pm, _ = load("bp_tabular")
    sel = Selection.resolve("tabular-forgetful", "toy_line", pm)
    cfg = sel.compose(overrides=[f"run.dir={tmp_path}", "run.progress=none", "run.tensorboard=false",
                                 "trainer.total_steps=64", "trainer.checkpoint_every=1", "trainer.n_envs=2",
                                 "trainer.rollout_steps=16"])
    trainer = start_run(sel, cfg, pm=pm)
    with pytest.raises(RoundTripError, match="returned nothing"):
        trainer.train()
    assert trainer.iteration == 1                            # stopped at the first checkpoint
    broken.setenv("SAFENET_PLUGINS", "safenet.testing,bp_tabular")
    broken.setenv("SAFENET_DISABLE_PLUGIN_AUTOLOAD", "1")
    rc, out, err = run_cli(capsys, "train", "--algo", "tabular-numpy", "--env", "toy_line", "trainer.total_steps=64",
                           "run.progress=none", "run.tensorboard=false")
    assert rc == 2
    assert "weights_only=True" in assert_one_line_error(err, "train")


def test_train_check_leaves_a_good_run_unchanged(broken, tmp_path):
    """The first-checkpoint check draws nothing from the run's generators: same metrics with or without it."""
    import csv

    pm, _ = load("bp_tabular")
    rows = []
    for k, check in enumerate((True, False)):
        sel = Selection.resolve("tabular-good", "toy_line", pm)
        cfg = sel.compose(overrides=[f"run.dir={tmp_path / str(k)}", "run.progress=none", "run.tensorboard=false",
                                     "trainer.total_steps=96", "trainer.checkpoint_every=1", "trainer.n_envs=2",
                                     "trainer.rollout_steps=16"])
        trainer = start_run(sel, cfg, pm=pm)
        trainer._round_trip_checked = not check
        trainer.train()
        with open(trainer.run.dir / "metrics.csv") as fh:
            rows.append([{k: v for k, v in r.items() if not k.startswith("time/")} for r in csv.DictReader(fh)])
    assert rows[0] == rows[1] and len(rows[0]) == 3


# ------------------------------------------------------------------------------------------------
# safenet doctor
# ------------------------------------------------------------------------------------------------

def _fake_entry_points(monkeypatch, eps: list[md.EntryPoint]) -> None:
    def entry_points(group=None):
        found = md.EntryPoints(eps)
        return found.select(group=group) if group else found

    monkeypatch.setattr(plugins_mod.md, "entry_points", entry_points)


def test_doctor_reports_every_problem_then_exits_nonzero(broken, cli_env, capsys):
    _fake_entry_points(broken, [md.EntryPoint("mistyped_group", "bp_tabular", "safenet.plugins")])
    broken.setenv("SAFENET_PLUGINS", "safenet.testing,bp_tabular,bp_clash,bp_hook_typo,bp_no_hookimpl,"
                                     "bp_registers_nothing,bp_missing_abstract")
    broken.setenv("SAFENET_STRICT_PLUGINS", "1")               # doctor reports instead of stopping
    sys.modules.pop("bp_missing_abstract_algo", None)
    rc, out, err = run_cli(capsys, "doctor")
    assert rc == 1
    problems = [line.split("problem: ", 1)[1] for line in out.splitlines() if "problem: " in line]
    expected = ["plugin 'bp_hook_typo' (SAFENET_PLUGINS) failed: safenet_algorithm is marked",
                "plugin 'bp_no_hookimpl' (SAFENET_PLUGINS): function safenet_algorithms has no @safenet.hookimpl",
                "plugin 'bp_registers_nothing' (SAFENET_PLUGINS): registers nothing",
                "entry point 'mistyped_group' of distribution '?' is in group 'safenet.plugins'",
                "algorithm 'tabular-good' is provided by several plugins",
                "algorithm 'no-update' of plugin 'bp_missing_abstract'"]
    for start in expected:
        assert sum(p.startswith(start) for p in problems) == 1, (start, problems)
    assert len(problems) == len(expected), "\n".join(problems)
    assert out.strip().endswith(f"{len(expected)} problem(s)")
