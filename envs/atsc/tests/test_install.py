"""The distribution installs on its own: a fresh venv with only the core and safenet-atsc (slow: pip
downloads or unpacks torch and the SUMO wheels). Run with ``pytest -m slow envs/atsc/tests``."""
from __future__ import annotations

import json
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_installs_and_trains_in_a_fresh_venv_with_only_the_core(tmp_path):
    src = tmp_path / "src"                  # build from a copy: pip leaves build/ folders in the source tree
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "build", "*.egg-info",
                                                             "__pycache__", "reports", "plugins", "examples"))
    venv.create(tmp_path / "venv", with_pip=True)
    py = str(tmp_path / "venv" / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", "-c", str(src / "constraints.txt"), str(src),
                    str(src / "envs" / "atsc")], check=True, cwd=tmp_path)
    out = subprocess.run([py, "-m", "safenet.cli", "plugins", "--json"], check=True, capture_output=True, text=True,
                         cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}).stdout
    plugins = json.loads(out)
    assert [(p["name"], p["status"]) for p in plugins] == [("safenet_atsc", "active")]
    assert set(plugins[0]["algorithms"]) == {"fixed-time", "max-pressure"}
    run = subprocess.run([py, "-m", "safenet.cli", "train", "--algo", "max-pressure", "--env", "atsc_grid_2x2",
                          "env.episode_s=300", "trainer.n_envs=2", "trainer.total_steps=120", "trainer.eval_episodes=2",
                          f"run.dir={tmp_path / 'runs'}", "run.progress=none"], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "eval/env/throughput" in run.stdout and (tmp_path / ".cache" / "safenet-atsc").is_dir()
