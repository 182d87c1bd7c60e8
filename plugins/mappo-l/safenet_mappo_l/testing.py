"""A tiny continuous-action networked game for tests and smoke runs (not registered by default).

``SAFENET_PLUGINS=safenet_mappo_l.testing safenet train --algo dec-mappo-l --env toy_reach`` makes it
available; the plugin's tests add it in-process.

``toy_reach``: agents on a line; agent ``i`` holds a position ``x_i ∈ [-1, 1]`` and observes
``(x_i, x_{i-1} − x_i, t / T)``. Even agents act in 2 dimensions, odd agents in 1 (heterogeneous, so
padded action dimensions are exercised). The first action component moves the agent:
``x_i ← clip(x_i + 0.25 a_i[0] + 0.1 (x_{i−1} − x_i), −1, 1)`` (agent 0 follows a fixed target 0.5).
Reward ``1 − (x_i − x_{i−1})²`` (agent 0: distance to its target) minus ``0.1 Σ a_i²``; cost
``1[|a_i[0]| > 0.5]`` (a fast move), limited per episode.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from safenet.errors import SafenetError
from safenet.game import BatchedGame, GameSpec
from safenet.graph import Graph
from safenet.hookspecs import hookimpl
from safenet.specs import EnvSpec


@dataclass
class ReachConfig:
    n_agents: int = 4
    episode_length: int = 10
    cost_limit: float = 2.0         # fast moves allowed per episode
    target: float = 0.5


class ReachGame(BatchedGame):
    def __init__(self, cfg: ReachConfig, num_envs: int = 1, seed: int | None = None) -> None:
        n = cfg.n_agents
        if n < 1:
            raise SafenetError(f"env.n_agents must be >= 1, got {n}")
        self.cfg, self.num_envs = cfg, num_envs
        self.spec = GameSpec(
            name="toy_reach", agents=tuple(f"agent_{i}" for i in range(n)), graph=Graph.line(n), obs_dims=(3,) * n,
            action_kind="continuous", action_dims=tuple(2 if i % 2 == 0 else 1 for i in range(n)),
            episode_length=cfg.episode_length, n_costs=(1,) * n, cost_limits=((cfg.cost_limit,),) * n,
            cost_names=("fast_moves",), state_dim=n)
        self.rng = np.random.default_rng(seed)
        self.x = np.zeros((num_envs, n))
        self.t = np.zeros(num_envs, dtype=np.int64)

    def _lead(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([np.full((x.shape[0], 1), self.cfg.target), x[:, :-1]], axis=1)

    def _obs(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        clock = np.broadcast_to((t / self.cfg.episode_length)[:, None], x.shape)
        return np.stack([x, self._lead(x) - x, clock], axis=-1).astype(np.float32)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.x = self.rng.uniform(-1, 1, (self.num_envs, self.spec.n))
        self.t[:] = 0
        return self._obs(self.x, self.t), {}

    def step(self, actions: Any):
        a = self.check_actions(actions)
        a = np.clip(a, -1.0, 1.0) * self.spec.action_mask()
        x2 = np.clip(self.x + 0.25 * a[..., 0] + 0.1 * (self._lead(self.x) - self.x), -1.0, 1.0)
        reward = (1.0 - (x2 - self._lead(x2)) ** 2 - 0.1 * (a ** 2).sum(-1)).astype(np.float32)
        cost = (np.abs(a[..., 0]) > 0.5).astype(np.float32)[..., None]
        self.t += 1
        trunc = self.t >= self.cfg.episode_length
        info: dict[str, Any] = {}
        if trunc.any():
            info["final_obs"] = self._obs(x2, self.t)
            info["final_state"] = x2.astype(np.float32)
            x2 = np.where(trunc[:, None], self.rng.uniform(-1, 1, x2.shape), x2)
            self.t[trunc] = 0
        self.x = x2
        return self._obs(x2, self.t), reward, cost, np.zeros(self.num_envs, dtype=bool), trunc, info

    def state(self) -> np.ndarray:
        return self.x.astype(np.float32)


def make_reach(cfg: ReachConfig, num_envs: int = 1, seed: int | None = None) -> ReachGame:
    return ReachGame(cfg, num_envs=num_envs, seed=seed)


@hookimpl
def safenet_environments() -> list[EnvSpec]:
    return [EnvSpec(name="toy_reach", factory="safenet_mappo_l.testing:make_reach", config=ReachConfig,
                    summary="Tiny continuous-action game on a line graph (tests and smoke runs)",
                    tags=frozenset({"continuous", "constrained", "global_state"}))]
