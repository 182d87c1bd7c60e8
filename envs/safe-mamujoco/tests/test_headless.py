"""On a machine without any OpenGL library, training and evaluation work and only ``--video`` fails, in one line.

The subprocesses get a ``sitecustomize`` that hides libGL, libEGL, libOSMesa and friends from both
``ctypes.util.find_library`` and ``ctypes.CDLL`` (how PyOpenGL loads them), as on a bare server image.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

HIDE_GL = textwrap.dedent('''
    import ctypes, ctypes.util, os, re
    _GL = re.compile(r"(lib)?(GL|EGL|GLX|GLU|OpenGL|OSMesa|GLESv2)([._]|$)", re.IGNORECASE)
    _find = ctypes.util.find_library
    ctypes.util.find_library = lambda name: None if _GL.match(name) else _find(name)
    _init = ctypes.CDLL.__init__
    def _cdll(self, name, *args, **kwargs):
        if name and _GL.match(os.path.basename(str(name))):
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        _init(self, name, *args, **kwargs)
    ctypes.CDLL.__init__ = _cdll
''')

RUN = textwrap.dedent('''
    import contextlib, ctypes, io, json, sys
    for lib in ("libEGL.so.1", "libGL.so.1", "libOSMesa.so.8"):
        try:
            ctypes.CDLL(lib)
            sys.exit(f"{lib} is still loadable: the test would prove nothing")
        except OSError:
            pass
    import safenet_mamujoco.game            # imports mujoco
    from safenet.cli import main
    commands = json.loads(sys.argv[1])
    results = []
    for argv in commands[:-1]:
        results.append([main(argv), ""])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        results.append([main(commands[-1]), err.getvalue()])
    print("RESULTS", json.dumps(results))
''')


def _headless_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(HIDE_GL)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL",
                                                            "PYOPENGL_PLATFORM")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def _run(env: dict[str, str], *commands: list[str]) -> list:
    """Run safenet ``commands`` in one headless Python; the last one's stderr is captured."""
    proc = subprocess.run([sys.executable, "-c", RUN, json.dumps(commands)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.split("RESULTS ", 1)[1])


def _assert_video_refused(rc: int, err: str, gif: Path) -> None:
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith("safenet eval: error: safe_ant_8x1: cannot render"), err
    assert "apt install libegl1" in lines[0] and "libosmesa6" in lines[0]
    assert not gif.exists()


def test_train_and_eval_without_any_gl_library_and_video_is_one_line(tmp_path):
    env = _headless_env(tmp_path)
    run, gif = tmp_path / "runs" / "headless", tmp_path / "ant.gif"
    train = ["train", "--algo", "dppo", "--env", "safe_ant_8x1", f"run.dir={tmp_path / 'runs'}", "run.name=headless",
             "run.progress=none", "run.tensorboard=false", "trainer.n_envs=2", "trainer.rollout_steps=8",
             "trainer.total_steps=16", "trainer.eval_episodes=1", "env.episode_length=8", "algo.epochs=1"]
    evaluate = ["eval", str(run), "--episodes", "1"]
    (rc_train, _), (rc_eval, _), (rc_video, err) = _run(env, train, evaluate, [*evaluate, "--video", str(gif)])
    assert rc_train == 0 and rc_eval == 0
    _assert_video_refused(rc_video, err, gif)
    # MUJOCO_GL=egl chosen by the user (the old default, which failed inside `import mujoco`): the same
    env["MUJOCO_GL"] = "egl"
    (rc_eval, _), (rc_video, err) = _run(env, evaluate, [*evaluate, "--video", str(gif)])
    assert rc_eval == 0
    _assert_video_refused(rc_video, err, gif)
