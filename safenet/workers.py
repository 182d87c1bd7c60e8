"""Rollout workers on Ray (``trainer.workers=N``): N actors step the game copies, the learner updates.

Worker ``w`` holds copies ``first_w .. first_w + k_w - 1`` of the ``trainer.n_envs`` copies (an even
split), its own game of ``k_w`` copies and a copy of the algorithm. Every iteration the learner sends
the algorithm's ``state_dict()`` (weights, normalisers) to every worker, each worker loads it and
collects ``rollout_steps`` steps with the ordinary :class:`~safenet.rollout.Collector`, and the learner
concatenates the workers' rollouts along the copy axis into the :class:`~safenet.rollout.Rollout` one
process would have collected. Games seed each copy by its index in the whole batch and the algorithm
draws its action noise per copy (:mod:`safenet.copies`), so the batch is the same bit for bit.

Ray is imported only here, and this module only when ``trainer.workers > 0``.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .errors import ConfigError, SafenetError
from .rollout import Collector, EpisodeStats, Rollout

INSTALL_HINT = "trainer.workers needs Ray: pip install 'safenet[ray]' (scripts/setup.sh installs it)"


def split_copies(n_envs: int, workers: int) -> list[tuple[int, int]]:
    """``(first, count)`` of each worker: ``n_envs`` copies split as evenly as possible."""
    if workers > n_envs:
        raise ConfigError(f"trainer.workers={workers} is more than trainer.n_envs={n_envs}: each worker needs a copy")
    sizes = [len(a) for a in np.array_split(np.arange(n_envs), workers)]
    firsts = np.cumsum([0, *sizes[:-1]])
    return [(int(f), int(k)) for f, k in zip(firsts, sizes)]


def merge_rollouts(parts: list[Rollout]) -> Rollout:
    """Workers' rollouts ``[T, k_w, ...]`` → one ``[T, B, ...]`` (copy order kept)."""
    def cat(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrays, axis=1)

    first = parts[0]
    return Rollout(**{k: cat([getattr(p, k) for p in parts]) for k in
                      ("obs", "actions", "reward", "cost", "terminated", "truncated", "next_obs")},
                   extras={k: cat([p.extras[k] for p in parts]) for k in first.extras},
                   infos={k: cat([p.infos[k] for p in parts]) for k in first.infos})


def merge_stats(parts: list[EpisodeStats]) -> EpisodeStats:
    """Workers' ended episodes in the order one process would have recorded them (step, then copy)."""
    items = []
    for p in parts:
        for i, end in enumerate(p.ends):
            items.append((end, p, i))
    items.sort(key=lambda x: x[0])
    out = EpisodeStats()
    names = {n for p in parts for n in p.metrics}
    for end, p, i in items:
        out.returns.append(p.returns[i])
        out.costs.append(p.costs[i])
        out.lengths.append(p.lengths[i])
        if p.disc_returns:
            out.disc_returns.append(p.disc_returns[i])
        for n in names:
            if n in p.metrics:
                out.metrics.setdefault(n, []).append(p.metrics[n][i])
        out.ends.append(end)
    return out


def merge_info(parts: list[dict], sizes: list[int]) -> dict:
    """The latest ``info`` of each worker's copies as one batch (per-copy arrays concatenated)."""
    out: dict[str, Any] = {}
    for k, v in parts[0].items():
        if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == sizes[0] and \
                all(isinstance(p.get(k), np.ndarray) and p[k].shape[0] == s for p, s in zip(parts, sizes)):
            out[k] = np.concatenate([p[k] for p in parts])
        else:
            out[k] = v
    return out


class RolloutWorker:
    """One Ray actor: a game holding some of the copies, and a copy of the algorithm that acts on them."""

    def __init__(self, algo: str, env: str, config_yaml: str, first: int, count: int, game_seed: int,
                 streams_seed: int | None, gamma: float | None) -> None:
        from . import config as cfgmod
        from .copies import CopyRNG
        from .trainer import Selection, bound_threads, make_algorithm, make_game

        sel = Selection.resolve(algo, env)
        cfg = cfgmod.from_yaml_text(config_yaml, sel.algo, sel.env)
        cfg.trainer.cpus, cfg.trainer.torch_threads = 1, 1           # one CPU per worker actor
        bound_threads(cfg)
        self.game = make_game(sel, cfg, count, game_seed)
        self.algo = make_algorithm(sel, self.game.spec, cfg)
        self.first, self.count = first, count
        if streams_seed is not None:
            self.algo.copy_streams = CopyRNG.for_batch(streams_seed, count, first)
        self.collector = Collector(self.game, seed=game_seed, gamma=gamma, first_copy=first)

    def collect(self, state: dict[str, Any], steps: int) -> tuple[Rollout, EpisodeStats, np.ndarray, dict, float]:
        t0 = time.perf_counter()
        self.algo.load_state_dict(state)
        rollout, stats = self.collector.collect(self.algo, steps)
        return rollout, stats, self.collector.obs, self.collector.info, time.perf_counter() - t0

    def restart(self, game_seed: int, streams_seed: int | None) -> None:
        self.collector.restart(game_seed)
        if streams_seed is not None and self.algo.copy_streams is not None:
            self.algo.copy_streams.reseed(streams_seed, self.first)

    def close(self) -> None:
        self.game.close()


class RemoteCollector:
    """The learner's side: same ``collect`` / ``restart`` / ``obs`` / ``info`` as a :class:`Collector`."""

    def __init__(self, algo: str, env: str, config_yaml: str, n_envs: int, workers: int, game_seed: int,
                 streams_seed: int | None, gamma: float | None) -> None:
        try:
            import ray
        except ImportError:
            raise SafenetError(INSTALL_HINT) from None
        self.split = split_copies(n_envs, workers)
        self._own_ray = not ray.is_initialized()
        if self._own_ray:
            from .cpus import machine_cpus

            # address="local": a new local instance, never a cluster some earlier `ray start` left behind
            ray.init(address="local", num_cpus=max(machine_cpus(), workers), include_dashboard=False,
                     log_to_driver=True)
        actor = ray.remote(num_cpus=1)(RolloutWorker)
        self.actors = [actor.remote(algo, env, config_yaml, first, count, game_seed, streams_seed, gamma)
                       for first, count in self.split]
        self.obs: np.ndarray | None = None
        self.info: dict = {}
        #: seconds of the last collect: wall, inside the slowest worker, and the rest (weights out, batches back)
        self.timing: dict[str, float] = {}

    def collect(self, algo, steps: int, deterministic: bool = False) -> tuple[Rollout, EpisodeStats]:
        import ray

        if deterministic:
            raise SafenetError("rollout workers collect training experience only (stochastic actions)")
        t0 = time.perf_counter()
        state = ray.put(algo.state_dict())
        results = ray.get([a.collect.remote(state, steps) for a in self.actors])
        wall = time.perf_counter() - t0
        rollout = merge_rollouts([r[0] for r in results])
        stats = merge_stats([r[1] for r in results])
        self.obs = np.concatenate([r[2] for r in results])
        self.info = merge_info([r[3] for r in results], [k for _, k in self.split])
        inside = max(r[4] for r in results)
        self.timing = {"wall_s": wall, "worker_s": inside, "overhead_s": wall - inside}
        return rollout, stats

    def restart(self, seed: int | None, streams_seed: int | None = None) -> None:
        import ray

        ray.get([a.restart.remote(seed, streams_seed) for a in self.actors])

    def close(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)
        self.actors = []
        if self._own_ray:
            ray.shutdown()
