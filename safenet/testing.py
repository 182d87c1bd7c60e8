"""Helpers for testing safenet plugins (an opt-in pytest plugin).

Enable in a plugin's ``conftest.py`` with ``pytest_plugins = ["safenet.testing"]`` to get the
fixtures :func:`toy_game` and :func:`safenet_run_dir`; call :func:`check_game` on your env and
:func:`check_algorithm` on your algorithm.

The module is itself a safenet plugin providing ``toy_line`` — a tiny finite networked game — so
``SAFENET_PLUGINS=safenet.testing safenet train --algo ... --env toy_line`` works without installing
any env plugin.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SafenetError
from .game import BatchedGame, GameSpec
from .graph import Graph
from .hookspecs import hookimpl
from .specs import EnvSpec


# ------------------------------------------------------------------------------------------------
# A toy finite networked game
# ------------------------------------------------------------------------------------------------

@dataclass
class ToyConfig:
    n_agents: int = 4
    episode_length: int = 8
    cost_limit: float = 3.0     # per-episode limit of "action 1" uses per agent
    follow_prob: float = 0.8    # chance an agent's next state copies its left neighbour's action


class ToyLineGame(BatchedGame):
    """Agents on a line; local state s_i ∈ {0, 1}; actions {0, 1}.

    Reward ``1[a_i == s_i]``; cost ``1[a_i == 1]``; next ``s_i`` copies the left neighbour's action
    with probability ``follow_prob`` (agent 0 copies its own), else is a fair coin.
    """

    def __init__(self, cfg: ToyConfig, num_envs: int = 1, seed: int | None = None) -> None:
        n = cfg.n_agents
        if n < 1:
            raise SafenetError(f"env.n_agents must be >= 1, got {n}")
        self.cfg, self.num_envs = cfg, num_envs
        self.spec = GameSpec(
            name="toy_line", agents=tuple(f"agent_{i}" for i in range(n)), graph=Graph.line(n),
            obs_dims=(2,) * n, action_kind="discrete", action_dims=(2,) * n, episode_length=cfg.episode_length,
            n_costs=(1,) * n, cost_limits=((cfg.cost_limit,),) * n, cost_names=("uses",),
            n_local_states=(2,) * n, state_dim=n, tags=frozenset({"finite"}))
        self.rng = np.random.default_rng(seed)
        self.s = np.zeros((num_envs, n), dtype=np.int64)
        self.t = np.zeros(num_envs, dtype=np.int64)

    def _obs(self, s: np.ndarray) -> np.ndarray:
        return np.eye(2, dtype=np.float32)[s]

    def _fresh(self, k: int) -> np.ndarray:
        return self.rng.integers(0, 2, size=(k, self.spec.n))

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.s = self._fresh(self.num_envs)
        self.t[:] = 0
        return self._obs(self.s), {"local_state": self.s.copy()}

    def step(self, actions: Any):
        a = self.check_actions(actions)
        B, n = a.shape
        reward = (a == self.s).astype(np.float32)
        cost = (a == 1).astype(np.float32)[..., None]
        left = np.concatenate([a[:, :1], a[:, :-1]], axis=1)
        follow = self.rng.random((B, n)) < self.cfg.follow_prob
        s2 = np.where(follow, left, self._fresh(B))
        self.t += 1
        trunc = self.t >= self.spec.episode_length
        term = np.zeros(B, dtype=bool)
        info: dict[str, Any] = {}
        if trunc.any():
            info["final_obs"] = self._obs(s2)
            info["final_local_state"] = s2.copy()
            info["final_state"] = s2.astype(np.float32)
            s2 = np.where(trunc[:, None], self._fresh(B), s2)
            self.t[trunc] = 0
        self.s = s2
        info["local_state"] = s2.copy()
        return self._obs(s2), reward, cost, term, trunc, info

    def state(self) -> np.ndarray:
        return self.s.astype(np.float32)


def make_toy(cfg: ToyConfig, num_envs: int = 1, seed: int | None = None) -> ToyLineGame:
    return ToyLineGame(cfg, num_envs=num_envs, seed=seed)


@hookimpl
def safenet_environments() -> list[EnvSpec]:
    return [EnvSpec(name="toy_line", factory="safenet.testing:make_toy", config=ToyConfig,
                    summary="Tiny finite game on a line graph (for tests and plugin authors)",
                    tags=frozenset({"finite", "discrete", "constrained", "global_state"}))]


# ------------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------------

def _fail(msg: str) -> None:
    raise AssertionError(msg)


def random_actions(spec: GameSpec, num_envs: int, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random valid actions for ``num_envs`` copies of a game (padding entries zero)."""
    if spec.action_kind == "discrete":
        return (rng.random((num_envs, spec.n)) * np.asarray(spec.action_dims)).astype(np.int64)
    return rng.uniform(spec.action_low, spec.action_high, (num_envs, spec.n, spec.action_dim)) * spec.action_mask()


def observation_batches(game: BatchedGame, steps: int, seed: int = 0) -> list[tuple[np.ndarray, dict]]:
    """``(obs, info)`` from a reset and ``steps`` random steps of ``game`` (inputs to compare policies on)."""
    rng = np.random.default_rng(seed)
    obs, info = game.reset(seed=seed)
    out = [(obs, info)]
    for _ in range(steps):
        obs, *_, info = game.step(random_actions(game.spec, game.num_envs, rng))
        out.append((obs, info))
    return out


def check_game(game: BatchedGame, steps: int | None = None, seed: int = 0) -> None:
    """Check a batched game against the protocol of :mod:`safenet.game` (raises AssertionError)."""
    spec, B = game.spec, game.num_envs
    if not isinstance(spec, GameSpec):
        _fail("game.spec must be a GameSpec")
    obs, info = game.reset(seed=seed)
    if obs.shape != (B, spec.n, spec.obs_dim):
        _fail(f"reset obs shape {obs.shape} != {(B, spec.n, spec.obs_dim)}")
    if "finite" in spec.tags and ("local_state" not in info or info["local_state"].shape != (B, spec.n)):
        _fail("finite games must return info['local_state'] of shape [B, n]")
    rng = np.random.default_rng(seed)
    steps = steps or 2 * spec.episode_length + 1
    ends = 0
    first_rewards = []
    for t in range(steps):
        actions = random_actions(spec, B, rng)
        obs, reward, cost, term, trunc, info = game.step(actions)
        first_rewards.append(reward.copy())
        for name, arr, shape in (("obs", obs, (B, spec.n, spec.obs_dim)), ("reward", reward, (B, spec.n)),
                                 ("cost", cost, (B, spec.n, spec.max_costs)), ("terminated", term, (B,)),
                                 ("truncated", trunc, (B,))):
            if arr.shape != shape:
                _fail(f"step {t}: {name} shape {arr.shape} != {shape}")
        if not np.all(np.isfinite(reward)) or not np.all(np.isfinite(cost)):
            _fail(f"step {t}: non-finite reward or cost")
        done = term | trunc
        if "finite" in spec.tags and ("local_state" not in info or info["local_state"].shape != (B, spec.n)):
            _fail(f"step {t}: finite games must return info['local_state'] of shape [B, n] on every step")
        if done.any():
            ends += 1
            if "final_obs" not in info or info["final_obs"].shape != obs.shape:
                _fail(f"step {t}: episodes ended but info['final_obs'] is missing or mis-shaped")
            if "finite" in spec.tags and "final_local_state" not in info:
                _fail(f"step {t}: episodes ended but the finite game gave no info['final_local_state']")
        if spec.state_dim and game.state().shape != (B, spec.state_dim):
            _fail(f"state() shape {game.state().shape} != {(B, spec.state_dim)}")
    if steps >= spec.episode_length and ends == 0:
        _fail(f"no episode ended within {steps} steps (episode_length={spec.episode_length})")


def check_algorithm(algo: str, env: str, tmp_path: Path, overrides: list[str] = (), pm=None) -> dict[str, float]:
    """The plugin author's one test: compose, train, save, reload, resume.

    1. composes the default config of the pair and trains one iteration (with an evaluation and a
       checkpoint);
    2. loads that checkpoint with ``torch.load(weights_only=True)`` into a fresh instance and checks
       it acts exactly like the trained one (same deterministic actions and ``extras``) on the same
       observations — a reset and a few random steps of a new copy of the game;
    3. resumes the run from the checkpoint and trains a second iteration.

    Raises ``AssertionError`` saying what to fix; returns the final metrics row.
    """
    from .roundtrip import RoundTripError
    from .trainer import Selection, make_game, resume_run, start_run

    sel = Selection.resolve(algo, env, pm)
    cfg = sel.compose(overrides=[f"run.dir={tmp_path}", "run.progress=none", "run.tensorboard=false",
                                 "trainer.n_envs=2", "trainer.eval_episodes=2", "trainer.total_steps=1",
                                 *overrides])
    first = start_run(sel, cfg, pm=pm)
    try:
        first.train()                                # total_steps=1: exactly one iteration
    except RoundTripError as exc:                    # the trainer's own guard on its first checkpoint
        _fail(f"check_algorithm({algo!r}, {env!r}): {exc}")
    ckpt = first.run.latest_checkpoint()
    if ckpt is None:
        _fail("no checkpoint written at the end of training")
    game = make_game(sel, cfg, 2, seed=12345)
    try:
        first.verify_checkpoint(ckpt, observation_batches(game, steps=min(8, 2 * game.spec.episode_length)))
    except RoundTripError as exc:
        _fail(f"check_algorithm({algo!r}, {env!r}): {exc}")
    finally:
        game.close()
    # every iteration collects the same number of steps, so twice the first one is exactly two
    second = resume_run(first.run.dir, [f"trainer.total_steps={2 * first.env_steps}"], pm=pm)
    if second.env_steps != first.env_steps:
        _fail(f"resume restored {second.env_steps} env steps, expected {first.env_steps}")
    final = second.train()
    if second.iteration != 2:
        _fail(f"expected 2 iterations after resume, got {second.iteration}")
    return final


# ------------------------------------------------------------------------------------------------
# pytest fixtures (active when a conftest declares ``pytest_plugins = ["safenet.testing"]``)
# ------------------------------------------------------------------------------------------------
try:
    import pytest

    @pytest.fixture
    def toy_game() -> ToyLineGame:
        return make_toy(ToyConfig(), num_envs=3, seed=0)

    @pytest.fixture
    def safenet_run_dir(tmp_path: Path) -> Path:
        d = tmp_path / "runs"
        d.mkdir()
        return d
except ImportError:  # pragma: no cover - pytest is optional at run time
    pass


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``safenet ARGV`` in-process; return its exit code and what it printed (pytest's ``capsys``)."""
    from .cli import main

    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(err: str, command: str) -> str:
    """A failed ``safenet COMMAND`` printed exactly one line, ``safenet COMMAND: error: ...``; return it."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"safenet {command}: error: "), err
    return lines[0]
