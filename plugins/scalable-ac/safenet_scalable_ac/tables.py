"""Sparse tables for truncated Q-functions ``Q̂_i(s_{N_i^κ}, a_{N_i^κ})``.

The joint local state-action space of a κ-hop neighbourhood grows exponentially with its size, but
only the entries an agent visits are ever needed. Each (agent, neighbourhood state-action) is
hashed to a 64-bit key (a polynomial hash with random odd multipliers; collisions among a few
million visited keys have probability ~1e-7) and keys are mapped to dense rows on first visit.
"""
from __future__ import annotations

import numpy as np
import torch

_MIX = np.uint64(0x9E3779B97F4A7C15)


class NeighbourhoodHasher:
    """Hashes gathered neighbourhood (state, action) pairs of every agent into uint64 keys."""

    def __init__(self, idx: np.ndarray, mask: np.ndarray, n_actions_max: int, seed: int = 0x5AFE) -> None:
        rng = np.random.default_rng(seed)
        n, K = idx.shape
        self.idx, self.mask = idx, mask
        self.n_actions_max = int(n_actions_max)
        mult = rng.integers(1, 2**63 - 1, size=(n, K), dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
        self.mult = np.where(mask, mult, np.uint64(0))                     # padded slots contribute nothing
        self.agent_salt = rng.integers(1, 2**63 - 1, size=n, dtype=np.int64).astype(np.uint64)

    def keys(self, local_state: np.ndarray, action: np.ndarray) -> np.ndarray:
        """``local_state, action: [..., n]`` → ``keys[..., n]`` (uint64)."""
        code = (local_state.astype(np.uint64) * np.uint64(self.n_actions_max) + action.astype(np.uint64) + np.uint64(1))
        gathered = code[..., self.idx]                                      # [..., n, K]
        with np.errstate(over="ignore"):
            h = (gathered * self.mult).sum(axis=-1, dtype=np.uint64)        # wraps mod 2^64
            h = (h ^ self.agent_salt) * _MIX
        return h


class SparseTable:
    """Rows of ``width`` floats addressed by uint64 keys; unseen keys start at zero."""

    def __init__(self, width: int, capacity: int = 1024) -> None:
        self.width = width
        self.index: dict[int, int] = {}
        self.values = np.zeros((capacity, width))
        self.visits = np.zeros(capacity)

    def __len__(self) -> int:
        return len(self.index)

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Row numbers for ``keys`` (any shape), adding rows for keys seen for the first time."""
        flat = keys.ravel()
        uniq, inverse = np.unique(flat, return_inverse=True)
        index = self.index
        out = np.empty(len(uniq), dtype=np.int64)
        for u, k in enumerate(uniq.tolist()):
            r = index.get(k)
            if r is None:
                r = index[k] = len(index)
            out[u] = r
        if len(index) > len(self.values):
            grown = np.zeros((max(len(index), 2 * len(self.values)), self.width))
            grown[: len(self.values)] = self.values
            self.values = grown
            visits = np.zeros(len(grown))
            visits[: len(self.visits)] = self.visits
            self.visits = visits
        return out[inverse].reshape(keys.shape)

    def clear(self) -> None:
        self.index.clear()
        self.values[:] = 0.0
        self.visits[:] = 0.0

    def state_dict(self) -> dict:
        keys = np.fromiter(self.index.keys(), dtype=np.uint64, count=len(self.index))
        rows = np.fromiter(self.index.values(), dtype=np.int64, count=len(self.index))
        return {"keys": torch.from_numpy(keys.view(np.int64).copy()), "rows": torch.from_numpy(rows),
                "values": torch.from_numpy(self.values[: len(self.index)].copy()),
                "visits": torch.from_numpy(self.visits[: len(self.index)].copy())}

    def load_state_dict(self, state: dict) -> None:
        keys = state["keys"].numpy().view(np.uint64)
        rows = state["rows"].numpy()
        self.index = dict(zip(keys.tolist(), rows.tolist()))
        vals = state["values"].numpy()
        self.values = np.zeros((max(1024, 2 * len(vals)), self.width))
        self.values[: len(vals)] = vals
        self.visits = np.zeros(len(self.values))
        self.visits[: len(vals)] = state["visits"].numpy()
