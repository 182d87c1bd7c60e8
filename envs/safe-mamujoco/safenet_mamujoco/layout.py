"""Observation layout: k-hop joint rings, the agents' graph, and index arrays for one-shot gathers.

Every step the game writes one flat float64 *source* row per copy::

    [ qpos (nq) | qvel (nv) | clip(cfrc_ext, -1, 1) (nbody*6, ant robots) | tracked body x, y (ants)
      | time (bomb) | tendon length, velocity (bomb) | task features | reward | cost | 0 ]

and every agent's observation (and the global state, reward and cost) is ``source[:, index]`` with
an index array built here once, padded with the trailing zero. The order inside an observation follows MaMuJoCo:
ring by ring (own joints first, then those 1 hop away, ...), joints sorted by name inside a ring,
for each joint the categories of its ring (``qpos``, ``qvel``, ``cfrc_ext`` of the bodies it moves,
each body once per agent); then the global parts (positions, then velocities of the root), then
the task features.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from safenet.graph import Graph

from .gl import import_mujoco
from .robots import Partition, RobotDef

mujoco = import_mujoco()


def joint_adjacency(robot: RobotDef) -> dict[str, set[str]]:
    adj: dict[str, set[str]] = {j: set() for j in robot.joints}
    for edge in robot.edges:
        for a in edge:
            adj[a].update(b for b in edge if b != a)
    return adj


def hop_rings(own: tuple[str, ...], adj: dict[str, set[str]], k: int) -> list[list[str]]:
    """Joints at exactly 0, 1, ..., k hops from ``own`` (each ring sorted by name)."""
    seen = set(own)
    ring = set(own)
    rings = [sorted(ring)]
    for _ in range(k):
        ring = {b for a in ring for b in adj[a]} - seen
        seen |= ring
        rings.append(sorted(ring))
    return rings


def agent_graph(parts: Partition, adj: dict[str, set[str]]) -> Graph:
    owner = {j: i for i, part in enumerate(parts) for j in part}
    edges = {tuple(sorted((owner[a], owner[b]))) for a in owner for b in adj[a] if owner[a] != owner[b]}
    return Graph.from_edges(len(parts), sorted(edges))


@dataclass
class SourceLayout:
    """Where each quantity sits in the source row (blocks of size 0 are absent).

    The offsets are plain attributes computed once: the step reads them a few dozen times."""

    nq: int
    nv: int
    n_cfrc_bodies: int = 0      # 0 when the robot does not observe contact forces
    n_track: int = 0            # 2: x, y of the body whose displacement is the forward motion (ant robots)
    time: bool = False          # simulation time (tasks whose features depend on it)
    tendon: bool = False        # length and velocity of tendon 0
    n_features: int = 0
    qvel: int = field(init=False)
    cfrc: int = field(init=False)
    track: int = field(init=False)
    clock: int = field(init=False)
    tendon_at: int = field(init=False)
    features: int = field(init=False)
    reward: int = field(init=False)
    cost: int = field(init=False)
    zero: int = field(init=False)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.qvel = self.nq
        self.cfrc = self.qvel + self.nv
        self.track = self.cfrc + 6 * self.n_cfrc_bodies
        self.clock = self.track + self.n_track
        self.tendon_at = self.clock + int(self.time)
        self.features = self.tendon_at + 2 * int(self.tendon)
        self.reward = self.features + self.n_features
        self.cost = self.reward + 1
        self.zero = self.cost + 1
        self.size = self.zero + 1


def _jid(model: mujoco.MjModel, name: str) -> int:
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)


def _bid(model: mujoco.MjModel, name: str) -> int:
    i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
    if i < 0:
        raise KeyError(f"no body {name!r} in the model")
    return i


def _qpos(model: mujoco.MjModel, name: str) -> list[int]:
    base, _, part = name.partition(":")
    adr = int(model.jnt_qposadr[_jid(model, base)])
    return [adr + {"x": 0, "y": 1}[part]] if part else [adr]


def _qvel(model: mujoco.MjModel, lay: SourceLayout, name: str) -> list[int]:
    j = _jid(model, name)
    adr = int(model.jnt_dofadr[j])
    n = 6 if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE else 1
    return [lay.qvel + adr + d for d in range(n)]


def global_part(model: mujoco.MjModel, robot: RobotDef, lay: SourceLayout) -> list[int]:
    """The root's positions then velocities, seen by every agent."""
    out: list[int] = []
    if robot.free_root_qpos:
        adr = int(model.jnt_qposadr[_jid(model, "root")])
        out += list(range(adr + 2, adr + 7))
    for name in robot.global_qpos:
        out += _qpos(model, name)
    for name in robot.global_qvel:
        out += _qvel(model, lay, name)
    return out


def observation_index(model: mujoco.MjModel, robot: RobotDef, rings: list[list[list[str]]], lay: SourceLayout,
                      feature_index: list[int]) -> tuple[np.ndarray, tuple[int, ...]]:
    """``index[n, o]`` into the source row (padded with ``lay.zero``) and each agent's real size."""
    cats = robot.local_categories
    glob = global_part(model, robot, lay)
    rows: list[list[int]] = []
    for agent_rings in rings:
        row: list[int] = []
        seen_bodies: set[int] = set()
        for k, ring in enumerate(agent_rings):
            for joint in ring:
                for cat in cats[min(k, len(cats) - 1)]:
                    if cat == "qpos":
                        row += _qpos(model, joint)
                    elif cat == "qvel":
                        row += _qvel(model, lay, joint)
                    elif cat == "cfrc_ext":
                        for body in robot.joint_bodies[joint]:
                            b = _bid(model, body)
                            if b not in seen_bodies:
                                seen_bodies.add(b)
                                row += list(range(lay.cfrc + 6 * b, lay.cfrc + 6 * b + 6))
                    else:  # pragma: no cover - robots only use the categories above
                        raise ValueError(f"unknown observation category {cat!r}")
        rows.append(row + glob + feature_index)
    dims = tuple(len(r) for r in rows)
    index = np.full((len(rows), max(dims)), lay.zero, dtype=np.intp)
    for i, r in enumerate(rows):
        index[i, : len(r)] = r
    return index, dims


def state_index(model: mujoco.MjModel, robot: RobotDef, lay: SourceLayout, feature_index: list[int]) -> np.ndarray:
    """Gymnasium's full observation of the robot (positions but x(, y), velocities, contact forces of
    every body but the world) followed by the task features."""
    skip = {i for name in robot.state_skip_qpos for i in _qpos(model, name)}
    out = [i for i in range(lay.nq) if i not in skip] + list(range(lay.qvel, lay.qvel + lay.nv))
    out += list(range(lay.cfrc + 6, lay.cfrc + 6 * lay.n_cfrc_bodies))
    return np.asarray(out + feature_index, dtype=np.intp)
