"""Nothing lost when a run is killed: SIGKILL at several points, SIGTERM and SIGINT, then `--resume`.

A real `safenet train` subprocess (the toy plugins of `safenet.testing`: `sac` on `toy_line`, a
checkpoint every iteration) is stopped once it has written some checkpoints; resuming must continue
from the newest complete checkpoint, leave no half-written file behind and log every env step once.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = ["train", "--algo", "sac", "--env", "toy_line", "run.name=k", "run.progress=none", "run.tensorboard=false",
        "trainer.n_envs=2", "trainer.eval_every_steps=-1", "trainer.checkpoint_every=1", "trainer.keep_checkpoints=3"]
STEPS_PER_ITER = 16          # sac on toy_line: whole 8-step episodes x 2 copies


def cli(*argv: str, cwd: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFENET_")}
    env["SAFENET_PLUGINS"] = "safenet.testing"
    return [sys.executable, "-m", "safenet.cli", *argv], env


def start(tmp_path: Path) -> subprocess.Popen:
    cmd, env = cli(*ARGS, f"run.dir={tmp_path}", "trainer.total_steps=10000000", cwd=tmp_path)
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoints(run: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.communicate()}")
        ckpts = list((run / "checkpoints").glob("ckpt_*.pt")) if (run / "checkpoints").exists() else []
        if ckpts and max(int(p.stem.split("_")[1]) for p in ckpts) >= n * STEPS_PER_ITER:
            return
        time.sleep(0.02)
    pytest.fail("no checkpoints appeared")


def resume_and_check(tmp_path: Path, run: Path) -> None:
    leftovers = list(run.glob(".*.tmp")) + list((run / "checkpoints").glob(".*.tmp"))
    latest = max(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("ckpt_*.pt"))
    target = latest + 3 * STEPS_PER_ITER
    cmd, env = cli("train", "--resume", str(run), f"trainer.total_steps={target}", cwd=tmp_path)
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert f"finished at {target} env steps" in proc.stdout
    assert not list(run.glob(".*.tmp")) and not list((run / "checkpoints").glob(".*.tmp")), leftovers
    with open(run / "metrics.csv", newline="") as fh:
        steps = [int(float(r["env_steps"])) for r in csv.DictReader(fh)]
    assert steps == list(range(STEPS_PER_ITER, target + 1, STEPS_PER_ITER))   # every iteration once, in order


@pytest.mark.parametrize("after, delay", [(1, 0.0), pytest.param(3, 0.013, marks=pytest.mark.slow),
                                          pytest.param(2, 0.031, marks=pytest.mark.slow)])
def test_sigkill_then_resume(tmp_path, after, delay):
    proc = start(tmp_path)
    run = tmp_path / "k"
    try:
        wait_for_checkpoints(run, after, proc)
        time.sleep(delay)                       # somewhere inside the next iteration or checkpoint write
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    resume_and_check(tmp_path, run)


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_sigterm_and_sigint_checkpoint_then_resume(tmp_path, sig):
    proc = start(tmp_path)
    run = tmp_path / "k"
    try:
        wait_for_checkpoints(run, 2, proc)
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the stop wrote a checkpoint at the last logged iteration: nothing logged is lost
    with open(run / "metrics.csv", newline="") as fh:
        last_logged = int(float(list(csv.DictReader(fh))[-1]["env_steps"]))
    latest = max(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("ckpt_*.pt"))
    assert latest == last_logged
    resume_and_check(tmp_path, run)
