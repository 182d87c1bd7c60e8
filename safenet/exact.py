"""Exact analysis of small finite networked games (enumerable joint state-action spaces).

An environment tagged ``finite`` may describe its dynamics as a :class:`FiniteModel`; this module
then computes exact quantities (Q-functions, discounted visitation, exact and κ-truncated policy
gradients) for tabular softmax policies, so truncation results such as Lemma 4 of Scalable Actor
Critic can be checked numerically.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .graph import Graph

TransitionFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class FiniteModel:
    """Product-form dynamics of a finite networked game (Eq. 1 of Scalable Actor Critic).

    ``transition(S, A)`` takes joint local states ``S[N, n]`` and joint local actions ``A[N, n]``
    (integers) and returns ``(P, R, C)``: ``P[N, n, S_max]`` the distribution of each agent's next
    local state (agents' next states are independent given ``(s, a)``), ``R[N, n]`` the expected
    reward of each agent and ``C[N, n, m]`` the expected costs.
    ``initial[n, S_max]`` is each agent's initial-state distribution (independent across agents).
    """

    graph: Graph
    n_local_states: tuple[int, ...]
    n_local_actions: tuple[int, ...]
    initial: np.ndarray
    transition: TransitionFn
    n_costs: int = 0
