"""Random numbers per game copy, keyed by the copy's index in the whole batch.

A batch of ``B`` copies split over rollout workers (``trainer.workers``) gives the same experience,
bit for bit, as the ``B`` copies stepped in one process only if every random draw belongs to one
copy: the copy's environment noise (initial states, arrivals, ...) and the noise of its actions.
Copy ``b`` of a batch seeded ``seed`` draws from its own generator seeded by ``(seed, b)``, so the
draws do not depend on which process holds the copy or on how many copies share that process.

* Environments that seed per copy set ``BatchedGame.per_copy_seeds = True``, accept a list of
  per-copy seeds in ``reset(seed=...)`` and draw through :class:`CopyRNG`.
* Algorithms that draw their action noise per copy set ``Algorithm.per_copy_sampling = True`` and
  draw from ``self.copy_streams`` (a :class:`CopyRNG`) when it is set and covers the batch.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def copy_seeds(seed: int, first: int, count: int) -> list[int]:
    """The seeds of copies ``first .. first + count - 1`` of a batch seeded ``seed``."""
    return [int(np.random.SeedSequence([int(seed) % 2**63, b]).generate_state(1)[0]) for b in range(first, first + count)]


class CopyRNG:
    """One ``numpy`` generator per copy; draws are stacked along a copy axis."""

    def __init__(self, seeds: Sequence[int]) -> None:
        self.gens = [np.random.default_rng(int(s)) for s in seeds]

    @classmethod
    def for_batch(cls, seed: int | Sequence[int] | None, count: int, first: int = 0) -> "CopyRNG":
        """Per-copy generators from one batch seed (copies ``first..``), a list of per-copy seeds, or
        fresh entropy (``None``)."""
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        if isinstance(seed, (int, np.integer)):
            return cls(copy_seeds(int(seed), first, count))
        seeds = [int(s) for s in seed]
        if len(seeds) != count:
            raise ValueError(f"{len(seeds)} per-copy seeds for {count} copies")
        return cls(seeds)

    def __len__(self) -> int:
        return len(self.gens)

    def _pick(self, copies: Sequence[int] | np.ndarray | None) -> list[np.random.Generator]:
        return self.gens if copies is None else [self.gens[int(b)] for b in copies]

    def random(self, shape: tuple[int, ...] = (), copies=None, dtype=np.float64) -> np.ndarray:
        """Uniform ``[0, 1)`` draws ``[k, *shape]`` for ``copies`` (default: all)."""
        gens = self._pick(copies)
        if not gens:
            return np.zeros((0, *shape), dtype=dtype)
        return np.stack([g.random(shape, dtype=dtype) for g in gens])

    def uniform(self, low: float, high: float, shape: tuple[int, ...] = (), copies=None) -> np.ndarray:
        gens = self._pick(copies)
        if not gens:
            return np.zeros((0, *shape))
        return np.stack([g.uniform(low, high, size=shape) for g in gens])

    def standard_normal(self, shape: tuple[int, ...] = (), copies=None, dtype=np.float64) -> np.ndarray:
        gens = self._pick(copies)
        if not gens:
            return np.zeros((0, *shape), dtype=dtype)
        return np.stack([g.standard_normal(shape, dtype=dtype) for g in gens])

    def reseed(self, seed: int, first: int = 0) -> None:
        self.gens = CopyRNG.for_batch(seed, len(self.gens), first).gens

    def along(self, axis: int) -> "CopyAxis":
        """A ``Generator``-like view whose ``random``/``standard_normal(shape)`` put the copies on ``axis``."""
        return CopyAxis(self, axis)


class CopyAxis:
    """Draws of full batch shapes whose axis ``axis`` is the copy axis (one generator per index)."""

    def __init__(self, rng: CopyRNG, axis: int) -> None:
        self.rng, self.axis = rng, axis

    def _draw(self, method: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        shape = tuple(shape)
        if shape[self.axis] != len(self.rng):
            raise ValueError(f"copy axis {self.axis} of shape {shape} has {shape[self.axis]} entries, "
                             f"not the {len(self.rng)} copies")
        per_copy = shape[: self.axis] + shape[self.axis + 1:]
        out = getattr(self.rng, method)(per_copy, dtype=dtype)          # [B, *per_copy]
        return np.moveaxis(out, 0, self.axis)

    def random(self, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        return self._draw("random", shape, dtype)

    def standard_normal(self, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        return self._draw("standard_normal", shape, dtype)
