"""``BatchedGame.render`` (optional, clear error by default) and ``safenet eval RUN_DIR --video FILE``."""
from __future__ import annotations

import numpy as np
import pytest

from safenet.cli import write_policy_video
from safenet.errors import SafenetError
from safenet.testing import ToyConfig, ToyLineGame, assert_one_line_error, make_toy, run_cli

PIL = pytest.importorskip("PIL.Image")




class PaintedToy(ToyLineGame):
    """toy_line drawing its local states in green (one 4-pixel column per agent, 255 for state 1) and its
    step counter in red (so consecutive frames always differ: GIF writers merge equal ones)."""

    dt = 0.1

    def render(self, env_index: int = 0) -> np.ndarray:
        img = np.zeros((6, 4 * self.spec.n, 3), dtype=np.uint8)
        for i, s in enumerate(self.s[env_index]):
            img[:, 4 * i: 4 * i + 4, 1] = 255 * int(s)
        img[..., 0] = 20 * int(self.t[env_index])
        return img


class ZeroPolicy:
    def act(self, obs, info, deterministic=False):
        return np.zeros(obs.shape[:2], dtype=np.int64), {}


def test_games_that_cannot_render_say_so():
    with pytest.raises(SafenetError, match="'toy_line' cannot render frames"):
        make_toy(ToyConfig(), num_envs=1).render()


def test_video_of_one_episode_as_gif(tmp_path):
    game = PaintedToy(ToyConfig(episode_length=8), num_envs=1, seed=3)
    out = write_policy_video(ZeroPolicy(), game, tmp_path / "clips" / "toy.gif", steps=100, seed=3)
    with PIL.open(out) as gif:
        assert gif.n_frames == 8                       # the first observation and 7 steps; the 8th ends it
        assert gif.info["duration"] == 100             # 1 / dt
        gif.seek(1)
        frame = np.asarray(gif.convert("RGB"))
    assert frame.shape == (6, 16, 3)
    assert set(np.unique(frame[..., 0])) == {20}                 # drawn after the first step
    assert set(np.unique(frame[..., 1])) <= {0, 255}


def test_video_step_limit_and_bad_format(tmp_path):
    game = PaintedToy(ToyConfig(episode_length=50), num_envs=1, seed=0)
    out = write_policy_video(ZeroPolicy(), game, tmp_path / "short.gif", steps=3)
    with PIL.open(out) as gif:
        assert gif.n_frames == 4
    with pytest.raises(SafenetError, match="unknown video format '.txt'"):
        write_policy_video(ZeroPolicy(), game, tmp_path / "x.txt")
    with pytest.raises(SafenetError, match="--video-steps must be positive"):
        write_policy_video(ZeroPolicy(), game, tmp_path / "x.gif", steps=0)


def test_eval_video_on_a_game_that_cannot_render(cli_env, capsys):
    rc, _, err = run_cli(capsys, "train", "--algo", "sac", "--env", "toy_line", f"run.dir={cli_env / 'runs'}",
                         "run.progress=none", "run.tensorboard=false", "trainer.n_envs=2", "trainer.total_steps=16",
                         "trainer.eval_every_steps=-1")
    assert rc == 0, err
    (run_dir,) = (cli_env / "runs").iterdir()
    rc, _, err = run_cli(capsys, "eval", str(run_dir), "--episodes", "1", "--video", "v.gif")
    assert rc == 2
    assert "cannot render frames" in assert_one_line_error(err, "eval")
    assert not (cli_env / "v.gif").exists()
    rc, _, err = run_cli(capsys, "eval", str(run_dir), "--episodes", "1", "--video", "v.txt")
    assert rc == 2 and "unknown video format" in assert_one_line_error(err, "eval")
