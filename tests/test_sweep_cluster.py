"""`safenet sweep --address` on a local two-node Ray cluster (127.0.0.1, one CPU per node): a 4-trial
sweep lands on both nodes; a sweep whose driver is killed resumes on rerun without redoing finished
trials. One cluster serves the module (Ray start-up is slow)."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

sys.path.insert(0, str(Path(__file__).parent))
from ray_cluster import DRIVER_ENV, TwoNodeCluster  # noqa: E402

SAFENET = [sys.executable, "-m", "safenet.cli"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = TwoNodeCluster(tmp_path_factory.mktemp("ray_logs")).start()
    yield c
    c.stop()


def sweep(address: str, run_dir: Path, *args: str, wait: bool = True, timeout: float = 400):
    cmd = [*SAFENET, "sweep", "--address", address, "--table-interval", "5", *args, f"run.dir={run_dir}",
           "run.tensorboard=false", "trainer.eval_every_steps=0", "trainer.eval_episodes=4"]
    env = {**os.environ, **DRIVER_ENV}
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                env=env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def summary(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_four_trials_land_on_both_nodes(cluster, tmp_path):
    out = sweep(cluster.address, tmp_path, "--algo", "ippo", "--env", "grid_wireless_3x3", "--seeds", "2",
                "--grid", "algo.clip=0.1,0.2", "--name", "four", "trainer.total_steps=3000", "trainer.n_envs=4")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    d = tmp_path / "sweeps" / "four"
    rows = summary(d)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    assert all(int(r["env_steps"]) >= 3000 for r in rows)
    assert {r["algo.clip"] for r in rows} == {"0.1", "0.2"} and {r["seed"] for r in rows} == {"0", "1"}
    assert all(r["return"] and r["cost/energy"] and r["limit/energy"] == "3.3" for r in rows)
    nodes = {json.loads((d / r["trial"] / "trial.json").read_text())["node_id"] for r in rows}
    assert len(nodes) == 2                                 # trials ran on the head and on the second node
    assert (d / "summary.png").stat().st_size > 0
    assert "sweep summary" in out.stdout and "completed" in out.stdout
    plot = subprocess.run([*SAFENET, "plot", str(d), "-o", str(tmp_path / "again.png")], capture_output=True, text=True)
    assert plot.returncode == 0 and (tmp_path / "again.png").exists()


def _record(d: Path, name: str) -> dict:
    try:
        return json.loads((d / name / "trial.json").read_text())
    except (OSError, ValueError):
        return {}


def test_killed_sweep_resumes_without_redoing_finished_trials(cluster, tmp_path):
    args = ["--algo", "ippo", "--env", "grid_wireless_3x3", "--grid", "trainer.total_steps=2000,60000", "--name", "kill",
            "trainer.n_envs=4", "trainer.checkpoint_every=1"]
    d = tmp_path / "sweeps" / "kill"
    short, long = "ippo-grid_wireless_3x3-total_steps=2000-s0", "ippo-grid_wireless_3x3-total_steps=60000-s0"
    driver = sweep(cluster.address, tmp_path, *args, wait=False)
    deadline = time.monotonic() + 300
    while not (_record(d, short).get("status") == "completed" and
               sorted((d / long / "checkpoints").glob("ckpt_*.pt")) and
               int(_record(d, long).get("env_steps", 0) or 0) == 0):
        assert driver.poll() is None, driver.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(1)
    os.killpg(driver.pid, signal.SIGKILL)                  # the driver dies without a word
    driver.wait(30)
    short_rows = (d / short / "metrics.csv").read_text()
    long_rows_before = (d / long / "metrics.csv").read_text().splitlines()
    time.sleep(3)                                          # the cluster ends the dead job's trials
    out = sweep(cluster.address, tmp_path, *args)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"reusing 1 finished trial(s): {short}" in out.stdout
    assert (d / short / "metrics.csv").read_text() == short_rows     # not rerun
    assert _record(d, short)["attempts"] == 1
    long_rows = (d / long / "metrics.csv").read_text().splitlines()
    assert _record(d, long)["attempts"] == 2 and _record(d, long)["status"] == "completed"
    kept = [r for r in long_rows_before[1:] if r]
    # the first run's rows stay (a resumed run may add columns, e.g. evaluation ones); it continued
    assert len(kept) >= 1 and long_rows[1].rstrip(",") == kept[0].rstrip(",")
    rows = {r["trial"]: r for r in summary(d)}
    assert rows[long]["status"] == "completed" and int(rows[long]["env_steps"]) >= 60000
