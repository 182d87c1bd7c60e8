"""Experience collection from a batched game, and return/advantage helpers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .game import BatchedGame

if TYPE_CHECKING:  # pragma: no cover
    from .algorithm import Algorithm


@dataclass
class Rollout:
    """``T`` steps of ``B`` copies. Arrays are time-major: ``[T, B, n, ...]`` (``[T, B]`` for flags).

    ``next_obs[t]`` is the observation after step ``t`` *before* any auto-reset, so
    ``done[t] = terminated[t] | truncated[t]`` marks where ``obs[t + 1]`` starts a new episode.
    ``extras`` holds what the algorithm's ``act`` returned; ``infos`` the game's per-step arrays
    (``local_state``, ``next_local_state``, ``state``, ``next_state``, ``common_obs`` when present).
    """

    obs: np.ndarray
    actions: np.ndarray
    reward: np.ndarray
    cost: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    next_obs: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    infos: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated

    @property
    def steps(self) -> int:
        return int(self.reward.shape[0] * self.reward.shape[1])


@dataclass
class EpisodeStats:
    """Totals of the episodes that ended during a collection (per agent)."""

    returns: list[np.ndarray] = field(default_factory=list)   # each [n]
    disc_returns: list[np.ndarray] = field(default_factory=list)  # each [n], discounted by the collector's gamma
    costs: list[np.ndarray] = field(default_factory=list)     # each [n, m]
    lengths: list[int] = field(default_factory=list)
    #: the game's field metrics of each ended episode (``info["episode_metrics"]``), by name
    metrics: dict[str, list[float]] = field(default_factory=dict)
    #: ``(step of the collection, copy index in the whole batch)`` where each episode ended: the
    #: order of one process's collection, which rollout workers' episodes are merged back into
    ends: list[tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.returns)


class Collector:
    """Steps a :class:`BatchedGame` with an algorithm's ``act`` and records a :class:`Rollout`."""

    def __init__(self, game: BatchedGame, seed: int | None = None, gamma: float | None = None,
                 first_copy: int = 0) -> None:
        """``first_copy``: index of the game's first copy in the whole batch (a rollout worker holds
        copies ``first_copy ..``); games with per-copy seeds seed each copy by that index."""
        self.game = game
        self.gamma = gamma
        self.first_copy = first_copy
        spec = game.spec
        B = game.num_envs
        self.obs, self.info = game.reset(seed=self._seed(seed))
        self._ep_return = np.zeros((B, spec.n))
        self._ep_cost = np.zeros((B, spec.n, spec.max_costs))
        self._ep_len = np.zeros(B, dtype=np.int64)
        self._ep_disc = np.zeros((B, spec.n))

    def _seed(self, seed: int | None):
        if seed is None or not getattr(self.game, "per_copy_seeds", False):
            return seed
        from .copies import copy_seeds

        return copy_seeds(seed, self.first_copy, self.game.num_envs)

    def restart(self, seed: int | None) -> None:
        """Start fresh episodes in every copy (used after loading a checkpoint)."""
        self.obs, self.info = self.game.reset(seed=self._seed(seed))
        self._ep_return[:] = 0
        self._ep_cost[:] = 0
        self._ep_len[:] = 0
        self._ep_disc[:] = 0

    def collect(self, algo: "Algorithm", steps: int, deterministic: bool = False) -> tuple[Rollout, EpisodeStats]:
        game, spec = self.game, self.game.spec
        buf: dict[str, list] = {k: [] for k in ("obs", "actions", "reward", "cost", "terminated", "truncated", "next_obs")}
        extras: dict[str, list] = {}
        infos: dict[str, list] = {}
        has_state = bool(spec.state_dim)
        stats = EpisodeStats()
        state = game.state() if has_state else None
        for t in range(steps):
            actions, extra = algo.act(self.obs, self.info, deterministic=deterministic)
            obs2, reward, cost, term, trunc, info = game.step(actions)
            done = term | trunc
            next_obs = np.where(done[:, None, None], info["final_obs"], obs2) if done.any() else obs2
            buf["obs"].append(self.obs)
            buf["actions"].append(actions)
            buf["reward"].append(reward)
            buf["cost"].append(cost)
            buf["terminated"].append(term)
            buf["truncated"].append(trunc)
            buf["next_obs"].append(next_obs)
            for k, v in extra.items():
                extras.setdefault(k, []).append(v)
            if "local_state" in self.info:
                nxt = info["local_state"]
                if done.any():
                    nxt = np.where(done[:, None], info["final_local_state"], nxt)
                infos.setdefault("local_state", []).append(self.info["local_state"])
                infos.setdefault("next_local_state", []).append(nxt)
            if "common_obs" in self.info:
                infos.setdefault("common_obs", []).append(self.info["common_obs"])
            if has_state:
                infos.setdefault("state", []).append(state)
                state2 = game.state()
                infos.setdefault("next_state", []).append(
                    np.where(done[:, None], info.get("final_state", state2), state2) if done.any() else state2)
                state = state2
            # episode bookkeeping
            if self.gamma is not None:
                self._ep_disc += reward * self.gamma ** self._ep_len[:, None]
            self._ep_return += reward
            self._ep_cost += cost
            self._ep_len += 1
            ep_metrics = info.get("episode_metrics") if done.any() else None
            for b in np.flatnonzero(done):
                if ep_metrics:
                    for name, values in ep_metrics.items():
                        stats.metrics.setdefault(name, []).append(float(values[b]))
                stats.returns.append(self._ep_return[b].copy())
                stats.costs.append(self._ep_cost[b].copy())
                stats.lengths.append(int(self._ep_len[b]))
                stats.ends.append((t, self.first_copy + int(b)))
                if self.gamma is not None:
                    stats.disc_returns.append(self._ep_disc[b].copy())
                    self._ep_disc[b] = 0
                self._ep_return[b] = 0
                self._ep_cost[b] = 0
                self._ep_len[b] = 0
            self.obs, self.info = obs2, info
        arrays = {k: np.stack(v) for k, v in buf.items()}
        rollout = Rollout(**arrays, extras={k: np.stack(v) for k, v in extras.items()},
                          infos={k: np.stack(v) for k, v in infos.items()})
        return rollout, stats


def discounted_returns(reward: np.ndarray, done: np.ndarray, gamma: float, bootstrap: np.ndarray | None = None) -> np.ndarray:
    """``G_t = r_t + γ (1 - done_t) G_{t+1}`` along axis 0 (time); ``done`` broadcasts over agents."""
    out = np.zeros_like(reward, dtype=np.float64)
    g = np.zeros(reward.shape[1:]) if bootstrap is None else bootstrap.astype(np.float64)
    d = done.reshape(done.shape + (1,) * (reward.ndim - done.ndim)).astype(np.float64)
    for t in range(reward.shape[0] - 1, -1, -1):
        g = reward[t] + gamma * (1.0 - d[t]) * g
        out[t] = g
    return out


def gae(reward: np.ndarray, value: np.ndarray, next_value: np.ndarray, terminated: np.ndarray,
        done: np.ndarray, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation (Schulman et al. 2016) along axis 0.

    ``next_value[t]`` is V of the state after step ``t`` (before auto-reset); ``terminated`` cuts the
    bootstrap, ``done`` (terminated or truncated) cuts the λ-trace. Returns ``(advantages, returns)``.
    """
    def bcast(x):
        return x.reshape(x.shape + (1,) * (reward.ndim - x.ndim)).astype(np.float64)

    term, dn = bcast(terminated), bcast(done)
    adv = np.zeros_like(reward, dtype=np.float64)
    last = np.zeros(reward.shape[1:])
    for t in range(reward.shape[0] - 1, -1, -1):
        delta = reward[t] + gamma * (1.0 - term[t]) * next_value[t] - value[t]
        last = delta + gamma * lam * (1.0 - dn[t]) * last
        adv[t] = last
    return adv, adv + value
