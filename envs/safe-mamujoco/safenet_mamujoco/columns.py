"""The source rows as the task rules see them: ``[B]`` numpy columns for a batch, plain floats for one copy.

The game's rules (reward, health, cost, task features) are written once against this small interface
and evaluated by one of two implementations:

* :class:`BatchColumns` (``num_envs > 1``): every column is a numpy array ``[B]`` and every rule a
  numpy expression over all copies;
* :class:`OneColumns` (``num_envs == 1``): every column is a Python float. A numpy call costs about
  1 µs whatever the array size, a float operation about 0.05 µs, and one copy's step is a few dozen
  such operations next to ~50 µs of physics for the light robots, so plain floats keep the single
  copy's step close to raw ``mj_step`` speed.

Both evaluate the same expressions in double precision (only sums of squares and ``sin`` may round
differently in the last bit; tested: a copy stepped alone and inside a batch gives the same outputs).
The operators ``+ - * / < > & | abs`` work on both kinds of columns; everything else the rules need is
a method here.
"""
from __future__ import annotations

import math

import numpy as np


class BatchColumns:
    """Columns of all copies' source rows ``src[B, L]`` as numpy arrays."""

    def __init__(self, src: np.ndarray) -> None:
        self.src = src

    def get(self, i: int) -> np.ndarray:
        return self.src[:, i]

    def snapshot(self, cols: list[int]) -> list[np.ndarray]:
        """Copies of some columns (their values before the physics step)."""
        return [self.src[:, i].copy() for i in cols]

    def put(self, i: int, value) -> None:
        self.src[:, i] = value

    @staticmethod
    def sumsq(x: np.ndarray) -> np.ndarray:
        """Row sums of squares of ``x[B, k]``."""
        return np.einsum("ij,ij->i", x, x)

    @staticmethod
    def finite(x: np.ndarray) -> bool:
        return bool(np.isfinite(x).all())

    def rows_finite(self, lo: int, hi: int) -> np.ndarray:
        return np.isfinite(self.src[:, lo:hi]).all(axis=1)

    def rows_within(self, lo: int, hi: int, bound: float) -> np.ndarray:
        """``-bound < src[:, lo:hi] < bound`` everywhere in the row (NaN is not within)."""
        x = self.src[:, lo:hi]
        return ((x > -bound) & (x < bound)).all(axis=1)

    sqrt = staticmethod(np.sqrt)
    clip = staticmethod(np.clip)

    not_ = staticmethod(np.logical_not)

    @staticmethod
    def array(value, dtype=np.float64) -> np.ndarray:
        return np.asarray(value, dtype=dtype)

    @staticmethod
    def tick(t: np.ndarray, episode_length: int, terminated) -> tuple[np.ndarray, np.ndarray, bool]:
        """Advance the step counters ``t`` in place: ``(terminated, truncated, any episode ended)``."""
        t += 1
        terminated = np.asarray(terminated, dtype=bool)
        if terminated.ndim == 0:
            terminated = np.full(t.shape, bool(terminated))
        truncated = (t >= episode_length) & ~terminated
        return terminated, truncated, bool(terminated.any() or truncated.any())


class OneColumns:
    """The single copy's source row ``src[1, L]`` as Python floats."""

    def __init__(self, src: np.ndarray) -> None:
        self.src = src
        self.row = src[0]
        self.get = self.row.item          # a float; bound once: the hot path calls it a dozen times a step

    def snapshot(self, cols: list[int]) -> list[float]:
        return [self.row.item(i) for i in cols]

    def put(self, i: int, value) -> None:
        self.row[i] = value

    @staticmethod
    def sumsq(x: np.ndarray) -> float:
        return float(np.vdot(x, x))      # x is [1, k]: vdot flattens it

    @staticmethod
    def finite(x: float) -> bool:
        return math.isfinite(x)

    def rows_finite(self, lo: int, hi: int) -> bool:
        # A sum of squares is finite exactly when every entry is, unless it overflows (entries above
        # ~1e154, which MuJoCo never leaves in qpos/qvel): only then look at every entry.
        x = self.row[lo:hi]
        return math.isfinite(np.vdot(x, x)) or bool(np.isfinite(x).all())

    def rows_within(self, lo: int, hi: int, bound: float) -> bool:
        return all(-bound < v < bound for v in self.row[lo:hi].tolist())

    sqrt = staticmethod(math.sqrt)

    @staticmethod
    def clip(x: float, lo: float, hi: float) -> float:
        return lo if x < lo else hi if x > hi else x

    @staticmethod
    def not_(flag: bool) -> bool:
        return not flag

    @staticmethod
    def array(value, dtype=np.float64) -> np.ndarray:
        return np.array((value,), dtype=dtype)

    @staticmethod
    def tick(t: np.ndarray, episode_length: int, terminated) -> tuple[np.ndarray, np.ndarray, bool]:
        steps = t.item(0) + 1
        t[0] = steps                      # (several times cheaper than t += 1 on a one-element array)
        truncated = steps >= episode_length and not terminated
        return np.array((terminated,)), np.array((truncated,)), terminated or truncated


Columns = BatchColumns | OneColumns


def columns_for(src: np.ndarray) -> Columns:
    return OneColumns(src) if src.shape[0] == 1 else BatchColumns(src)
