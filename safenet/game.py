"""The constrained networked Markov game: its description (`GameSpec`) and the batched protocol.

Every environment plugin exposes its game through two faces:

* the **batched game** (:class:`BatchedGame`, the fast path used by the trainer): ``B`` copies
  stepped together, all arrays shaped ``[B, n, ...]``;
* the **PettingZoo face** (:func:`to_parallel_env`): a standard ``ParallelEnv`` whose infos carry each
  agent's costs in ``infos[agent]["cost"]``.

:class:`ParallelEnvGame` goes the other way and batches any PettingZoo ``ParallelEnv``.

Conventions of the batched game
-------------------------------
``reset(seed) -> (obs[B, n, o], info)`` and
``step(actions) -> (obs, reward[B, n], cost[B, n, m], terminated[B], truncated[B], info)``.

* Observations of agents with ``obs_dims[i] < o`` are zero-padded.
* Discrete actions are integers ``[B, n]`` (agent ``i`` has ``action_dims[i]`` choices, see
  :meth:`GameSpec.action_mask`); continuous actions are floats ``[B, n, a]`` (zero-padded).
* Costs of agents with fewer than ``m = max_i n_costs[i]`` signals are zero-padded. A constraint
  bounds the **undiscounted per-episode sum** of a cost: ``E[sum_t C_j^i(t)] <= cost_limits[i][j]``.
* Copies reset themselves when their episode ends: ``obs[b]`` is then the new episode's first
  observation and ``info["final_obs"][b]`` the last one of the episode that ended. Other per-step
  arrays in ``info`` follow the same rule with a ``final_`` prefix.
* Envs tagged ``finite`` also return ``info["local_state"]``: int ``[B, n]``, agent ``i``'s local
  state index in ``range(n_local_states[i])`` (and ``info["final_local_state"]``).
* Envs may report field metrics of each episode (mean queue, delay, ...): on a step where some copy's
  episode ended, ``info["episode_metrics"]`` maps a metric name to a float array ``[B]`` (read only
  for the copies that ended; NaN elsewhere). The trainer logs their means as
  ``rollout/env/<name>`` and ``eval/env/<name>``.
* Envs with a global state implement ``state() -> [B, state_dim]``; envs with common information
  put ``info["common_obs"]`` (``[B, common_obs_dim]``) in every reset/step info.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np

from .errors import SafenetError
from .graph import Graph

ActionKind = Literal["discrete", "continuous"]

#: Well-known tags an environment can declare and an algorithm can require.
KNOWN_TAGS = {
    "finite": "finite local states and actions; info carries integer local_state indices",
    "discrete": "discrete actions",
    "continuous": "continuous (Box) actions",
    "global_state": "state() returns the global state",
    "common_obs": "info['common_obs'] carries an observation every agent sees",
    "constrained": "at least one agent has a cost signal with a limit",
}


@dataclass(frozen=True)
class GameSpec:
    """Everything an algorithm may know about a game before it starts.

    Heterogeneous agents are allowed: per-agent sizes are tuples; batched arrays are padded to the
    maximum and :meth:`obs_mask`, :meth:`action_mask`, :meth:`cost_mask` say what is real.
    """

    name: str
    agents: tuple[str, ...]
    graph: Graph
    obs_dims: tuple[int, ...]
    action_kind: ActionKind
    action_dims: tuple[int, ...]
    episode_length: int
    n_costs: tuple[int, ...] | None = None
    cost_limits: tuple[tuple[float, ...], ...] | None = None
    cost_names: tuple[str, ...] = ()
    action_low: float = -1.0
    action_high: float = 1.0
    state_dim: int | None = None
    common_obs_dim: int | None = None
    n_local_states: tuple[int, ...] | None = None
    tags: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        n = len(self.agents)
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        put("agents", tuple(self.agents))
        put("obs_dims", tuple(int(x) for x in self.obs_dims))
        put("action_dims", tuple(int(x) for x in self.action_dims))
        if self.n_costs is None:
            put("n_costs", (0,) * n)
        put("n_costs", tuple(int(x) for x in self.n_costs))
        if self.cost_limits is None:
            put("cost_limits", tuple(() for _ in range(n)))
        put("cost_limits", tuple(tuple(float(c) for c in row) for row in self.cost_limits))
        if self.n_local_states is not None:
            put("n_local_states", tuple(int(x) for x in self.n_local_states))
        if self.graph.n != n:
            raise SafenetError(f"game {self.name!r}: graph has {self.graph.n} agents, spec has {n}")
        for key in ("obs_dims", "action_dims", "n_costs", "cost_limits"):
            if len(getattr(self, key)) != n:
                raise SafenetError(f"game {self.name!r}: {key} needs one entry per agent ({n})")
        for i, (m, lim) in enumerate(zip(self.n_costs, self.cost_limits)):
            if len(lim) != m:
                raise SafenetError(f"game {self.name!r}: agent {i} has {m} costs but {len(lim)} limits")
        if self.action_kind not in ("discrete", "continuous"):
            raise SafenetError(f"action_kind must be 'discrete' or 'continuous', got {self.action_kind!r}")
        if self.episode_length <= 0:
            raise SafenetError(f"episode_length must be positive, got {self.episode_length}")
        tags = set(self.tags) | {self.action_kind}
        if self.state_dim:
            tags.add("global_state")
        if self.common_obs_dim:
            tags.add("common_obs")
        if self.max_costs:
            tags.add("constrained")
        put("tags", frozenset(tags))
        if not self.cost_names:
            put("cost_names", tuple(f"cost{j}" for j in range(self.max_costs)))
        put("cost_names", tuple(self.cost_names))
        if len(self.cost_names) != self.max_costs:
            raise SafenetError(f"game {self.name!r}: {len(self.cost_names)} cost_names for "
                               f"{self.max_costs} cost signals (max of n_costs)")

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.agents)

    @property
    def obs_dim(self) -> int:
        return max(self.obs_dims)

    @property
    def action_dim(self) -> int:
        """Padded action size: number of choices (discrete) or vector size (continuous)."""
        return max(self.action_dims)

    @property
    def max_costs(self) -> int:
        return max(self.n_costs, default=0)

    # -- masks ----------------------------------------------------------------------------------
    def obs_mask(self) -> np.ndarray:
        return np.arange(self.obs_dim)[None, :] < np.asarray(self.obs_dims)[:, None]

    def action_mask(self) -> np.ndarray:
        """``[n, action_dim]``: true for agent ``i``'s real actions (or action components)."""
        return np.arange(self.action_dim)[None, :] < np.asarray(self.action_dims)[:, None]

    def cost_mask(self) -> np.ndarray:
        return np.arange(self.max_costs)[None, :] < np.asarray(self.n_costs)[:, None]

    def cost_limit_array(self) -> np.ndarray:
        """``[n, m]`` limits, ``inf`` where an agent has no such cost."""
        out = np.full((self.n, self.max_costs), np.inf)
        for i, row in enumerate(self.cost_limits):
            out[i, : len(row)] = row
        return out

    def summary(self) -> str:
        kinds = f"{self.action_kind} actions"
        if not self.max_costs:
            costs = "no costs"
        elif len(set(self.n_costs)) == 1:
            costs = f"{self.max_costs} cost per agent ({', '.join(self.cost_names)})"
        else:
            costs = f"{sum(self.n_costs)} cost signals ({', '.join(self.cost_names)})"
        # the diameter needs all-pairs distances (O(n²) memory, a BFS from every agent): large graphs show degrees
        graph = (f"graph diameter {self.graph.diameter}" if self.n <= 1024 else
                 f"graph max degree {int(self.graph.adjacency.sum(1).max())}")
        return (f"{self.name}: {self.n} agents, {graph}, obs {self.obs_dim}, "
                f"{kinds} ({self.action_dim}), {costs}, episodes of {self.episode_length} steps")


StepResult = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]


class BatchedGame(abc.ABC):
    """``num_envs`` copies of a game stepped together (see the module docstring for the rules)."""

    spec: GameSpec
    num_envs: int
    #: True when every copy draws from its own generator and ``reset`` also takes a list of per-copy
    #: seeds (:mod:`safenet.copies`): then copies split over rollout workers (``trainer.workers``)
    #: behave exactly as in one batch.
    per_copy_seeds: bool = False

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        """Start a fresh episode in every copy; ``seed`` makes the whole batch reproducible (games with
        :attr:`per_copy_seeds` also take one seed per copy)."""

    @abc.abstractmethod
    def step(self, actions: np.ndarray) -> StepResult:
        """Advance every copy one step; copies whose episode ended are reset (see module doc)."""

    def state(self) -> np.ndarray:
        raise SafenetError(f"game {self.spec.name!r} has no global state")

    def render(self, env_index: int = 0) -> np.ndarray:
        """An RGB frame ``[H, W, 3]`` (uint8) of copy ``env_index``, for videos (``safenet eval --video``).

        Optional: games that can draw themselves override it; the default says the game cannot.
        """
        raise SafenetError(f"game {self.spec.name!r} cannot render frames (its environment plugin offers no render())")

    def close(self) -> None:
        pass

    # Helpers for implementations -------------------------------------------------------------
    def check_actions(self, actions: Any) -> np.ndarray:
        """Validate and normalise an action batch; raises a clear error on a wrong shape/value."""
        spec, B = self.spec, self.num_envs
        a = np.asarray(actions)
        if spec.action_kind == "discrete":
            if a.shape != (B, spec.n):
                raise SafenetError(f"{spec.name}: expected discrete actions of shape {(B, spec.n)}, got {a.shape}")
            if not np.issubdtype(a.dtype, np.integer):
                if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
                    raise SafenetError(f"{spec.name}: discrete actions must be integers")
                a = a.astype(np.int64)
            bad = (a < 0) | (a >= np.asarray(spec.action_dims)[None, :])
            if bad.any():
                b, i = map(int, np.argwhere(bad)[0])
                raise SafenetError(f"{spec.name}: agent {spec.agents[i]} got action {int(a[b, i])}; "
                                   f"valid actions are 0..{spec.action_dims[i] - 1}")
            return a
        if a.shape != (B, spec.n, spec.action_dim):
            raise SafenetError(f"{spec.name}: expected continuous actions of shape "
                               f"{(B, spec.n, spec.action_dim)}, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise SafenetError(f"{spec.name}: actions contain NaN or inf")
        return a.astype(np.float64, copy=False)


GameFactory = Callable[..., BatchedGame]


# ------------------------------------------------------------------------------------------------
# PettingZoo face
# ------------------------------------------------------------------------------------------------

def to_parallel_env(make_game: Callable[[int], BatchedGame], render_mode: str | None = None):
    """Wrap a batched game factory (called with ``num_envs=1``) as a PettingZoo ``ParallelEnv``."""
    from .pettingzoo_adapter import GameParallelEnv

    return GameParallelEnv(make_game, render_mode=render_mode)


def from_parallel_env(env_fns: Sequence[Callable[[], Any]], **kwargs) -> BatchedGame:
    """Batch PettingZoo ``ParallelEnv`` copies (one factory per copy) into a :class:`BatchedGame`."""
    from .pettingzoo_adapter import ParallelEnvGame

    return ParallelEnvGame(env_fns, **kwargs)
