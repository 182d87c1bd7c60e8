"""`safenet sweep` without a cluster: the grid, the checks before any trial starts, Ray as an extra;
and `trainer.workers`: the same batch, bit for bit, as in-process."""
from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from safenet.cli import main
from safenet.copies import CopyRNG, copy_seeds
from safenet.sweep import GridKey, plan_sweep, trial_name
from safenet.errors import ConfigError


def test_grid_key_parsing_and_trial_names():
    g = GridKey.parse("algo.kappa=1,2,3")
    assert g.key == "algo.kappa" and g.values == ("1", "2", "3")
    for bad in ("algo.kappa", "algo.kappa=", "=1,2", "algo.kappa=1,,2", "seed=1,2"):
        with pytest.raises(ConfigError):
            GridKey.parse(bad)
    assert trial_name("ippo", "grid_wireless_3x3", 2, {"algo.kappa": "1"}) == "ippo-grid_wireless_3x3-kappa=1-s2"


def test_plan_expands_algos_envs_seeds_and_grid(tmp_path):
    plan = plan_sweep(["ippo", "mappo-l"], ["grid_wireless_3x3"], 2, [GridKey.parse("algo.clip=0.1,0.2")],
                      [f"run.dir={tmp_path}", "trainer.total_steps=1000"])
    assert len(plan.trials) == 8
    assert plan.dir == (tmp_path / "sweeps" / plan.name).resolve()
    assert {t.seed for t in plan.trials} == {0, 1}
    assert all(plan.total_steps[t.name] == 1000 for t in plan.trials)
    again = plan_sweep(["ippo", "mappo-l"], ["grid_wireless_3x3"], 2, [GridKey.parse("algo.clip=0.1,0.2")],
                       [f"run.dir={tmp_path}", "trainer.total_steps=1000"])
    assert again.name == plan.name                       # the same command names the same sweep: a rerun resumes


def test_bad_key_fails_before_any_trial_naming_it(tmp_path, capsys):
    code = main(["sweep", "--algo", "ippo", "--env", "grid_wireless_3x3", "--grid", "algo.clipp=0.1,0.2",
                 f"run.dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2 and "algo.clipp" in err and "did you mean 'algo.clip'" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "sweeps").exists()            # nothing was created, no trial started
    assert main(["sweep", "--algo", "ippo", "--env", "no_such_env", f"run.dir={tmp_path}"]) == 2


def test_sweep_without_ray_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)          # import ray fails
    code = main(["sweep", "--algo", "ippo", "--env", "grid_wireless_3x3", f"run.dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'safenet[ray]'" in err


def test_core_never_imports_ray(tmp_path):
    code = ("import sys; from safenet.cli import main; "
            f"rc = main(['train', '--algo', 'ippo', '--env', 'grid_wireless_3x3', 'trainer.total_steps=300', "
            f"'run.dir={tmp_path}', 'run.progress=none', 'trainer.eval_every_steps=-1']); "
            "assert rc == 0; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_copy_streams_do_not_depend_on_the_split():
    whole = CopyRNG.for_batch(7, 6)
    parts = [CopyRNG.for_batch(7, 4, first=0), CopyRNG.for_batch(7, 2, first=4)]
    for _ in range(3):
        a = whole.along(1).standard_normal((3, 6, 2), dtype=np.float32)
        b = np.concatenate([p.along(1).standard_normal((3, len(p), 2), dtype=np.float32) for p in parts], axis=1)
        assert np.array_equal(a, b)
    assert copy_seeds(7, 4, 2) == copy_seeds(7, 0, 6)[4:]


def test_workers_refuse_games_without_per_copy_seeds(tmp_path, capsys):
    code = main(["train", "--algo", "ippo", "--env", "cacc_catchup", "trainer.workers=2", f"run.dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2 and "trainer.workers=2" in err and "per_copy_seeds" in err


def _metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_workers_collect_the_in_process_batch_bit_for_bit(tmp_path):
    pytest.importorskip("ray")
    from safenet.trainer import Selection, start_run

    sel = Selection.resolve("mappo-l", "grid_wireless_3x3")
    rows = {}
    for workers in (0, 2):
        cfg = sel.compose(overrides=["trainer.total_steps=1600", "trainer.n_envs=4", f"trainer.workers={workers}",
                                     f"run.dir={tmp_path}", "run.progress=none", "run.tensorboard=false",
                                     "trainer.eval_every_steps=-1", "seed=3"])
        trainer = start_run(sel, cfg)
        trainer.train()
        rows[workers] = _metrics(trainer.run.dir)
    a, b = rows[0], rows[2]
    assert len(a) == len(b) >= 3
    keys = [k for k in a[0] if not k.startswith("time/")]
    assert any(k.startswith("train/") for k in keys) and "rollout/ep_return" in keys
    for ra, rb in zip(a, b):
        assert {k: ra[k] for k in keys} == {k: rb.get(k) for k in keys}
    assert all(float(r["time/workers_overhead_s"]) >= 0 for r in b)
