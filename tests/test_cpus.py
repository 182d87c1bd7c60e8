"""``trainer.cpus`` bounds a run's threads: torch's intra-op threads and the environments' thread pools."""
from __future__ import annotations

import pytest
import torch

from safenet import cpus
from safenet.errors import ConfigError
from safenet.trainer import TORCH_DEFAULT_THREADS, Selection, start_run


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch):
    monkeypatch.delenv(cpus.ENV_VAR, raising=False)
    monkeypatch.setattr(cpus, "_run_budget", None)       # no bound left over from an earlier run in this process
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_budget_defaults_to_the_env_var_then_the_machine(monkeypatch):
    assert cpus.cpu_budget() == cpus.machine_cpus() >= 1
    monkeypatch.setenv(cpus.ENV_VAR, "3")
    assert cpus.cpu_budget() == 3 and cpus.resolve_cpus(0) == 3 and cpus.resolve_cpus(5) == 5
    monkeypatch.setenv(cpus.ENV_VAR, "lots")
    with pytest.raises(ConfigError, match="SAFENET_CPUS='lots' must be a positive integer"):
        cpus.cpu_budget()


def test_explicit_torch_threads_win_and_cpus_bounds_the_default():
    assert cpus.torch_threads(budget=2, explicit=0, torch_default=16) == 2
    assert cpus.torch_threads(budget=32, explicit=0, torch_default=16) == 16
    assert cpus.torch_threads(budget=2, explicit=6, torch_default=16) == 6


def _trainer(tmp_path, *overrides: str):
    sel = Selection.resolve("dppo", "cacc_catchup")
    cfg = sel.compose(overrides=[f"run.dir={tmp_path}", "run.progress=none", "run.tensorboard=false",
                                 "trainer.n_envs=2", *overrides])
    return start_run(sel, cfg)


def test_a_run_applies_its_cpu_budget(tmp_path):
    t = _trainer(tmp_path, "trainer.cpus=1")
    assert t.cpus == 1 and cpus.cpu_budget() == 1 and torch.get_num_threads() == 1
    t.run.close()
    t = _trainer(tmp_path, "trainer.cpus=1", "trainer.torch_threads=2")
    assert torch.get_num_threads() == 2 and cpus.cpu_budget() == 1
    t.run.close()
    t = _trainer(tmp_path)                                      # cpus=0: the next run is not bounded by the last
    assert t.cpus == cpus.machine_cpus()
    assert torch.get_num_threads() == min(TORCH_DEFAULT_THREADS, cpus.machine_cpus())
    t.run.close()


@pytest.mark.parametrize("bad", ["trainer.cpus=-1", "trainer.torch_threads=-2"])
def test_negative_thread_counts_name_the_key(tmp_path, bad):
    with pytest.raises(ConfigError, match=rf"{bad}: must be an integer >= 0"):
        _trainer(tmp_path, bad)
