"""The agents' interaction graph: distances and κ-hop neighbourhoods.

`N_i^κ` is the set of agents within graph distance κ of agent ``i`` (``i`` included). The
neighbourhood index is padded into a rectangular ``(n, K)`` array with a boolean mask so that κ-hop
inputs for every agent can be gathered in one tensor operation::

    idx, mask = graph.neighbourhood_index(kappa)    # idx[i] = N_i^κ, self first
    gathered = obs[:, idx]                           # (B, n, K, obs_dim)
"""
from __future__ import annotations

from collections import deque
from functools import cached_property

import numpy as np

UNREACHABLE = -1


class Graph:
    """An undirected graph on ``n`` agents, built from a symmetric 0/1 adjacency matrix.

    Self loops are ignored. Distances between disconnected agents are :data:`UNREACHABLE` (-1) in
    :attr:`distances`; such agents are never in each other's neighbourhood.
    """

    def __init__(self, adjacency: np.ndarray | list) -> None:
        adj = np.asarray(adjacency)
        if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
            raise ValueError(f"adjacency must be a square matrix, got shape {adj.shape}")
        adj = adj != 0
        if not np.array_equal(adj, adj.T):
            raise ValueError("adjacency must be symmetric (the agents' graph is undirected)")
        adj = adj.copy()
        np.fill_diagonal(adj, False)
        self.adjacency: np.ndarray = adj
        self.adjacency.setflags(write=False)

    # -- constructors ---------------------------------------------------------------------------
    @classmethod
    def from_edges(cls, n: int, edges) -> "Graph":
        adj = np.zeros((n, n), dtype=bool)
        for i, j in edges:
            if not (0 <= i < n and 0 <= j < n):
                raise ValueError(f"edge ({i}, {j}) names an agent outside 0..{n - 1}")
            adj[i, j] = adj[j, i] = True
        return cls(adj)

    @classmethod
    def line(cls, n: int) -> "Graph":
        return cls.from_edges(n, [(i, i + 1) for i in range(n - 1)])

    @classmethod
    def complete(cls, n: int) -> "Graph":
        return cls(np.ones((n, n), dtype=bool))

    # -- basic facts ----------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.adjacency.shape[0]

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Graph(n={self.n}, edges={int(self.adjacency.sum()) // 2}, diameter={self.diameter})"

    def neighbours(self, i: int) -> np.ndarray:
        """Direct neighbours of ``i`` (without ``i``)."""
        return np.flatnonzero(self.adjacency[i])

    @cached_property
    def distances(self) -> np.ndarray:
        """All-pairs shortest-path lengths in hops (BFS from every agent); -1 when unreachable."""
        n = self.n
        dist = np.full((n, n), UNREACHABLE, dtype=np.int64)
        nbrs = [self.neighbours(i) for i in range(n)]
        for src in range(n):
            dist[src, src] = 0
            queue = deque([src])
            while queue:
                u = queue.popleft()
                for v in nbrs[u]:
                    if dist[src, v] == UNREACHABLE:
                        dist[src, v] = dist[src, u] + 1
                        queue.append(v)
        dist.setflags(write=False)
        return dist

    @property
    def connected(self) -> bool:
        return bool((self.distances != UNREACHABLE).all())

    @property
    def diameter(self) -> int:
        """Longest shortest path within a connected component (0 for a single agent)."""
        return int(self.distances.max()) if self.n else 0

    # -- κ-hop neighbourhoods -------------------------------------------------------------------
    def _check_kappa(self, kappa: int) -> int:
        if isinstance(kappa, bool) or not isinstance(kappa, (int, np.integer)) or kappa < 0:
            raise ValueError(f"kappa must be a non-negative integer, got {kappa!r}")
        return int(kappa)

    def within(self, kappa: int) -> np.ndarray:
        """Boolean ``(n, n)`` matrix: ``[i, j]`` is true when ``d(i, j) <= kappa``."""
        kappa = self._check_kappa(kappa)
        d = self.distances
        return (d != UNREACHABLE) & (d <= kappa)

    def neighbourhood(self, i: int, kappa: int) -> np.ndarray:
        """``N_i^κ`` as an index array: ``i`` first, then the others in increasing index order."""
        idx, mask = self.neighbourhood_index(kappa)
        return idx[i][mask[i]].copy()

    def neighbourhood_index(self, kappa: int) -> tuple[np.ndarray, np.ndarray]:
        """Padded κ-hop neighbourhoods: ``idx[n, K]`` (self first) and ``mask[n, K]``.

        ``K = max_i |N_i^κ|``; padded entries repeat agent ``i`` itself and are false in ``mask``,
        so a gather with ``idx`` never reads outside ``N_i^κ``.
        """
        return _neighbourhood_index(self, self._check_kappa(kappa))

    def max_neighbourhood(self, kappa: int) -> int:
        """``f(κ) = max_i |N_i^κ|``."""
        return int(self.neighbourhood_index(kappa)[1].sum(axis=1).max()) if self.n else 0


def _neighbourhood_index(graph: Graph, kappa: int) -> tuple[np.ndarray, np.ndarray]:
    cache = graph.__dict__.setdefault("_nbr_cache", {})
    if kappa not in cache:
        rows = _neighbourhoods(graph, kappa)
        width = max((len(r) for r in rows), default=0)
        idx = np.empty((graph.n, width), dtype=np.int64)
        mask = np.zeros((graph.n, width), dtype=bool)
        for i, r in enumerate(rows):
            idx[i, : len(r)] = r
            idx[i, len(r):] = i
            mask[i, : len(r)] = True
        idx.setflags(write=False)
        mask.setflags(write=False)
        cache[kappa] = (idx, mask)
    return cache[kappa]


def _adjacency_lists(graph: Graph) -> list[np.ndarray]:
    lists = graph.__dict__.get("_adj_lists")
    if lists is None:
        src, dst = np.nonzero(graph.adjacency)
        lists = np.split(dst, np.searchsorted(src, np.arange(1, graph.n)))
        graph.__dict__["_adj_lists"] = lists
    return lists


def _neighbourhoods(graph: Graph, kappa: int) -> list[np.ndarray]:
    """``N_i^κ`` of every agent (self first, then increasing index) by a BFS cut at ``κ`` hops.

    Work and memory grow with ``Σ_i |N_i^κ|`` (the frontiers), never with ``n²``: the all-pairs
    :attr:`Graph.distances` are not built. The same sets as :meth:`Graph.within` (tests check both).
    """
    n = graph.n
    nbrs = _adjacency_lists(graph)
    seen = np.zeros(n, dtype=bool)
    rows: list[np.ndarray] = []
    for i in range(n):
        seen[i] = True
        members, frontier = [np.array([i])], np.array([i])
        for _ in range(kappa):
            if not len(frontier):
                break
            cand = np.unique(np.concatenate([nbrs[u] for u in frontier]))
            frontier = cand[~seen[cand]]
            seen[frontier] = True
            members.append(frontier)
        found = np.concatenate(members)
        seen[found] = False
        rows.append(np.concatenate([[i], np.sort(found[1:])]).astype(np.int64))
    return rows
