"""Adapters between safenet's batched games and PettingZoo's ``ParallelEnv`` (both ways)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from .errors import SafenetError
from .game import BatchedGame, GameSpec, StepResult
from .graph import Graph


def _action_space(spec: GameSpec, i: int) -> spaces.Space:
    if spec.action_kind == "discrete":
        return spaces.Discrete(spec.action_dims[i])
    return spaces.Box(spec.action_low, spec.action_high, shape=(spec.action_dims[i],), dtype=np.float32)


class GameParallelEnv(ParallelEnv):
    """A one-copy :class:`BatchedGame` seen as a PettingZoo ``ParallelEnv``.

    Costs are reported per agent in ``infos[agent]["cost"]`` (a float array of that agent's cost
    signals); finite games also give ``infos[agent]["local_state"]``.
    """

    metadata = {"name": "safenet", "render_modes": ["rgb_array"], "is_parallelizable": True}

    def __init__(self, make_game: Callable[[int], BatchedGame], render_mode: str | None = None) -> None:
        self.game = make_game(1)
        self.spec_: GameSpec = self.game.spec
        self.render_mode = render_mode
        spec = self.spec_
        self.possible_agents = list(spec.agents)
        self.agents: list[str] = []
        self._obs_spaces = {a: spaces.Box(-np.inf, np.inf, shape=(spec.obs_dims[i],), dtype=np.float32)
                            for i, a in enumerate(spec.agents)}
        self._act_spaces = {a: _action_space(spec, i) for i, a in enumerate(spec.agents)}
        self.metadata = dict(self.metadata, name=spec.name)

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self._act_spaces[agent]

    def _split_obs(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {a: obs[0, i, : self.spec_.obs_dims[i]].astype(np.float32) for i, a in enumerate(self.possible_agents)}

    def _infos(self, info: dict, cost: np.ndarray | None, final: bool) -> dict[str, dict]:
        spec = self.spec_
        out: dict[str, dict] = {}
        key = "final_local_state" if final else "local_state"
        for i, a in enumerate(self.possible_agents):
            d: dict[str, Any] = {}
            if cost is not None:
                d["cost"] = cost[0, i, : spec.n_costs[i]].astype(np.float64)
            if key in info:
                d["local_state"] = int(info[key][0, i])
            out[a] = d
        return out

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, info = self.game.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._split_obs(obs), self._infos(info, None, final=False)

    def step(self, actions: dict[str, Any]):
        spec = self.spec_
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise SafenetError(f"{spec.name}: no action for agents {missing}")
        if spec.action_kind == "discrete":
            batch = np.array([[int(actions[a]) for a in self.possible_agents]], dtype=np.int64)
        else:
            batch = np.zeros((1, spec.n, spec.action_dim))
            for i, a in enumerate(self.possible_agents):
                batch[0, i, : spec.action_dims[i]] = np.asarray(actions[a], dtype=np.float64)
        obs, reward, cost, term, trunc, info = self.game.step(batch)
        done = bool(term[0] or trunc[0])
        if done:
            obs = info["final_obs"]
        observations = self._split_obs(obs)
        rewards = {a: float(reward[0, i]) for i, a in enumerate(self.possible_agents)}
        terminations = {a: bool(term[0]) for a in self.possible_agents}
        truncations = {a: bool(trunc[0]) and not bool(term[0]) for a in self.possible_agents}
        infos = self._infos(info, cost, final=done)
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        return self.game.state()[0]

    def render(self):
        frame = self.game.render()
        return None if frame is None else frame

    def close(self) -> None:
        self.game.close()


class ParallelEnvGame(BatchedGame):
    """Batch ``B`` PettingZoo ``ParallelEnv`` copies (one factory each) into a :class:`BatchedGame`.

    All copies must have the same agents and spaces. The graph defaults to the complete graph
    (every agent may interact with every other); pass ``graph`` to describe the real coupling.
    Costs are read from ``infos[agent]["cost"]`` (missing means no cost); ``cost_limits`` gives
    the per-agent per-episode limits.
    """

    def __init__(self, env_fns: Sequence[Callable[[], Any]], *, name: str | None = None,
                 graph: Graph | None = None, episode_length: int = 1000,
                 cost_limits: Sequence[Sequence[float]] | None = None) -> None:
        if not env_fns:
            raise SafenetError("from_parallel_env needs at least one env factory")
        self.envs = [fn() for fn in env_fns]
        self.num_envs = len(self.envs)
        env = self.envs[0]
        agents = list(env.possible_agents)
        n = len(agents)
        obs_spaces = [env.observation_space(a) for a in agents]
        act_spaces = [env.action_space(a) for a in agents]
        if all(isinstance(s, spaces.Discrete) for s in act_spaces):
            kind, adims = "discrete", [int(s.n) for s in act_spaces]
            low, high = -1.0, 1.0
        elif all(isinstance(s, spaces.Box) for s in act_spaces):
            kind, adims = "continuous", [int(np.prod(s.shape)) for s in act_spaces]
            low, high = float(np.min(act_spaces[0].low)), float(np.max(act_spaces[0].high))
        else:
            raise SafenetError("from_parallel_env supports all-Discrete or all-Box action spaces")
        limits = [tuple(r) for r in cost_limits] if cost_limits is not None else [() for _ in agents]
        self.spec = GameSpec(
            name=name or str(env.metadata.get("name", "pettingzoo")), agents=tuple(agents),
            graph=graph or Graph.complete(n), obs_dims=tuple(int(np.prod(s.shape)) for s in obs_spaces),
            action_kind=kind, action_dims=tuple(adims), episode_length=episode_length,
            n_costs=tuple(len(r) for r in limits), cost_limits=tuple(limits), action_low=low, action_high=high)
        self._seed: int | None = None

    def _obs_array(self, obs_dicts: list[dict]) -> np.ndarray:
        spec = self.spec
        out = np.zeros((self.num_envs, spec.n, spec.obs_dim), dtype=np.float32)
        for b, od in enumerate(obs_dicts):
            for i, a in enumerate(spec.agents):
                if a in od:
                    out[b, i, : spec.obs_dims[i]] = np.asarray(od[a], dtype=np.float32).ravel()
        return out

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        self._seed = seed
        obs = [env.reset(seed=None if seed is None else seed + b)[0] for b, env in enumerate(self.envs)]
        return self._obs_array(obs), {}

    def step(self, actions: np.ndarray) -> StepResult:
        spec, B = self.spec, self.num_envs
        a = self.check_actions(actions)
        reward = np.zeros((B, spec.n), dtype=np.float32)
        cost = np.zeros((B, spec.n, spec.max_costs), dtype=np.float32)
        term = np.zeros(B, dtype=bool)
        trunc = np.zeros(B, dtype=bool)
        next_obs, final_obs = [], []
        for b, env in enumerate(self.envs):
            act = {ag: (a[b, i] if spec.action_kind == "discrete" else a[b, i, : spec.action_dims[i]])
                   for i, ag in enumerate(spec.agents) if ag in env.agents}
            o, r, te, tr, inf = env.step(act)
            for i, ag in enumerate(spec.agents):
                reward[b, i] = r.get(ag, 0.0)
                c = np.asarray(inf.get(ag, {}).get("cost", ()), dtype=np.float32).ravel()
                cost[b, i, : min(len(c), spec.n_costs[i])] = c[: spec.n_costs[i]]
            term[b] = all(te.values()) if te else True
            trunc[b] = (all(tr.values()) if tr else False) and not term[b]
            final_obs.append(o)
            if term[b] or trunc[b] or not env.agents:
                term[b] = term[b] or not trunc[b]
                o, _ = env.reset()
            next_obs.append(o)
        return self._obs_array(next_obs), reward, cost, term, trunc, {"final_obs": self._obs_array(final_obs)}

    def close(self) -> None:
        for env in self.envs:
            env.close()
