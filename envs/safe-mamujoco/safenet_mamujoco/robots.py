"""Robots: their models, joint graphs (which joints touch), agent partitions and observation parts.

A robot's *joint graph* has one node per actuated joint. A hyperedge groups joints that touch: joints
moving bodies attached to the same body (the four hips on the Ant's torso), or a joint and the joint
of the body it hangs from (hip and ankle of one leg). Agents own disjoint sets of joints (a
*partition*); two agents are neighbours when a joint of one touches a joint of the other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from safenet.errors import ConfigError

from . import models
from .config import parse_grid_partition

Partition = list[tuple[str, ...]]


@dataclass(frozen=True)
class RobotDef:
    """Everything the game needs to know about one robot (names refer to the generated MJCF)."""

    key: str
    xml: Callable[..., str]                     # xml(walls=..., timestep=...) or xml(bomb=...)
    joints: tuple[str, ...]                     # actuated joints = nodes of the joint graph
    edges: tuple[tuple[str, ...], ...]          # hyperedges of joints that touch
    partitions: dict[str, Partition]            # partition name -> joints of each agent
    kind: str                                   # reward / health rules: ant, cheetah, coupled, hopper, walker, swimmer
    frame_skip: int
    reset_noise: float
    qvel_noise: str                             # "normal" (Ant, HalfCheetah) or "uniform"
    global_qpos: tuple[str, ...] = ()           # joint names whose positions every agent observes (see qpos_slices)
    global_qvel: tuple[str, ...] = ()
    state_skip_qpos: tuple[str, ...] = ()       # joints (x, y positions) left out of the global state
    local_categories: tuple[tuple[str, ...], ...] = (("qpos", "qvel"), ("qpos",))
    joint_bodies: dict[str, tuple[str, ...]] = field(default_factory=dict)  # bodies whose cfrc_ext a joint observes
    main_body: str = "torso"                    # body whose displacement is the forward reward (ant kind)
    healthy_z: tuple[float, float] = (-float("inf"), float("inf"))
    healthy_angle: tuple[float, float] = (-float("inf"), float("inf"))
    total_mass: float | None = None             # rescale masses after compiling (cheetahs)
    free_root_qpos: bool = False                # global qpos of the free joint: qpos[2:7] (z + quaternion)


def _each(joints: tuple[str, ...]) -> Partition:
    return [(j,) for j in joints]


# -- Ant ---------------------------------------------------------------------------------------------
def _ant() -> RobotDef:
    legs = [(f"hip_{k}", f"ankle_{k}") for k in range(1, 5)]
    bodies = {}
    for k, (leg, *_rest) in enumerate(models.ANT_LEGS, start=1):
        bodies[f"hip_{k}"] = ("torso", leg)
        bodies[f"ankle_{k}"] = (leg, f"{leg}_hip", f"{leg}_foot")
    h = lambda k: (f"hip_{k}", f"ankle_{k}")  # noqa: E731
    joints = tuple(j for leg in legs for j in leg)
    return RobotDef(
        key="ant", xml=models.ant_xml, joints=joints,
        edges=tuple((f"ankle_{k}", f"hip_{k}") for k in range(1, 5)) + (("hip_1", "hip_2", "hip_3", "hip_4"),),
        partitions={"8x1": _each(joints), "2x4": [h(1) + h(2), h(3) + h(4)], "2x4d": [h(1) + h(4), h(2) + h(3)],
                    "4x2": [h(k) for k in range(1, 5)]},
        kind="ant", frame_skip=5, reset_noise=0.1, qvel_noise="normal", free_root_qpos=True,
        global_qvel=("root",), state_skip_qpos=("root:x", "root:y"),
        local_categories=(("qpos", "qvel", "cfrc_ext"), ("qpos",)), joint_bodies=bodies,
        main_body="torso", healthy_z=(0.2, 1.0))


# -- ManyAgent (segmented) Ant ----------------------------------------------------------------------
def _many_segment_ant(partition: str) -> RobotDef:
    n_agents, per_agent = parse_grid_partition(partition)
    n_seg = n_agents * per_agent
    joints, bodies, edges = [], {}, []
    for s in range(n_seg):
        first, second = ("front_left_leg_0", "right_back_leg_0") if s == 0 else (f"front_right_leg_{s}", f"back_leg_{s}")
        seg = (f"hip1_{s}", f"ankle1_{s}", f"hip2_{s}", f"ankle2_{s}")
        joints += seg
        bodies[seg[0]] = (f"torso_{s}", first)
        bodies[seg[1]] = (first, f"{first}_hip", f"{first}_foot")
        bodies[seg[2]] = (f"torso_{s}", second)
        bodies[seg[3]] = (second, f"{second}_hip", f"{second}_foot")
        edges += [(seg[1], seg[0]), (seg[3], seg[2]), (seg[0], seg[2])]
        if s:   # the hips of consecutive segments touch through the spine joint between the torsos
            edges.append((f"hip1_{s - 1}", f"hip2_{s - 1}", seg[0], seg[2]))
    parts = [tuple(joints[4 * a * per_agent: 4 * (a + 1) * per_agent]) for a in range(n_agents)]
    return RobotDef(
        key="many_segment_ant", xml=lambda **kw: models.many_segment_ant_xml(n_seg, **kw), joints=tuple(joints),
        edges=tuple(edges), partitions={partition: parts}, kind="ant", frame_skip=5, reset_noise=0.1,
        qvel_noise="normal", free_root_qpos=True, global_qvel=("root",), state_skip_qpos=("root:x", "root:y"),
        local_categories=(("qpos", "qvel", "cfrc_ext"), ("qpos",)), joint_bodies=bodies, main_body="torso_0",
        healthy_z=(0.2, 1.0))


# -- HalfCheetah and the Coupled HalfCheetah ----------------------------------------------------------
def _cheetah_edges(suffix: str) -> list[tuple[str, ...]]:
    j = [f"{n}{suffix}" for n in models.CHEETAH_JOINTS]   # bthigh bshin bfoot fthigh fshin ffoot
    return [(j[2], j[1]), (j[1], j[0]), (j[0], j[3]), (j[3], j[4]), (j[4], j[5])]


def _half_cheetah() -> RobotDef:
    joints = models.CHEETAH_JOINTS
    return RobotDef(
        key="half_cheetah", xml=lambda **kw: models.half_cheetah_xml(), joints=joints, edges=tuple(_cheetah_edges("")),
        partitions={"6x1": _each(joints), "2x3": [joints[:3], joints[3:]]}, kind="cheetah", frame_skip=5,
        reset_noise=0.1, qvel_noise="normal", global_qpos=("rootz", "rooty"), global_qvel=("rootx", "rootz", "rooty"),
        state_skip_qpos=("rootx",), total_mass=models.CHEETAH_TOTAL_MASS)


def _coupled_half_cheetah() -> RobotDef:
    j0 = tuple(f"{n}0" for n in models.CHEETAH_JOINTS)
    j1 = tuple(f"{n}1" for n in models.CHEETAH_JOINTS)
    # The tendon joins the two torsos: the joints hanging from each torso (both thighs) touch across it.
    edges = _cheetah_edges("0") + _cheetah_edges("1") + [("bthigh0", "fthigh0", "bthigh1", "fthigh1")]

    def pairs(j: tuple[str, ...]) -> Partition:
        return [(j[1], j[2]), (j[0], j[3]), (j[4], j[5])]     # back shin+foot, both thighs, front shin+foot

    return RobotDef(
        key="coupled_half_cheetah", xml=models.coupled_half_cheetah_xml, joints=j0 + j1, edges=tuple(edges),
        partitions={"12x1": _each(j0 + j1), "2x6": [j0, j1], "6x2": pairs(j0) + pairs(j1)}, kind="coupled",
        frame_skip=5, reset_noise=0.1, qvel_noise="normal", global_qpos=("rootz0", "rooty0", "rootz1", "rooty1"),
        global_qvel=("rootx0", "rootz0", "rooty0", "rootx1", "rootz1", "rooty1"),
        state_skip_qpos=("rootx0", "rootx1"), total_mass=models.CHEETAH_TOTAL_MASS)


# -- Hopper, Walker2d, Swimmer ------------------------------------------------------------------------
def _hopper() -> RobotDef:
    joints = ("thigh_joint", "leg_joint", "foot_joint")
    return RobotDef(
        key="hopper", xml=lambda **kw: models.hopper_xml(), joints=joints,
        edges=(("foot_joint", "leg_joint"), ("leg_joint", "thigh_joint")), partitions={"3x1": _each(joints)},
        kind="hopper", frame_skip=4, reset_noise=5e-3, qvel_noise="uniform", global_qpos=("rootz", "rooty"),
        global_qvel=("rootx", "rootz", "rooty"), state_skip_qpos=("rootx",), healthy_z=(0.7, float("inf")),
        healthy_angle=(-0.2, 0.2))


def _walker2d() -> RobotDef:
    right = ("foot_joint", "leg_joint", "thigh_joint")
    left = ("foot_left_joint", "leg_left_joint", "thigh_left_joint")
    edges = (("foot_joint", "leg_joint"), ("leg_joint", "thigh_joint"), ("foot_left_joint", "leg_left_joint"),
             ("leg_left_joint", "thigh_left_joint"), ("thigh_joint", "thigh_left_joint"))
    return RobotDef(
        key="walker2d", xml=lambda **kw: models.walker2d_xml(), joints=right + left, edges=edges,
        partitions={"2x3": [right, left]}, kind="walker", frame_skip=4, reset_noise=5e-3, qvel_noise="uniform",
        global_qpos=("rootz", "rooty"), global_qvel=("rootx", "rootz", "rooty"), state_skip_qpos=("rootx",),
        healthy_z=(0.8, 2.0), healthy_angle=(-1.0, 1.0))


def _swimmer() -> RobotDef:
    joints = ("motor1_rot", "motor2_rot")
    return RobotDef(
        key="swimmer", xml=lambda **kw: models.swimmer_xml(), joints=joints, edges=(joints,),
        partitions={"2x1": _each(joints)}, kind="swimmer", frame_skip=4, reset_noise=0.1, qvel_noise="uniform",
        global_qpos=("free_body_rot",), global_qvel=("slider1", "slider2", "free_body_rot"),
        state_skip_qpos=("slider1", "slider2"))


ROBOTS: dict[str, Callable[[str], RobotDef]] = {
    "ant": lambda p: _ant(),
    "many_segment_ant": _many_segment_ant,
    "half_cheetah": lambda p: _half_cheetah(),
    "coupled_half_cheetah": lambda p: _coupled_half_cheetah(),
    "hopper": lambda p: _hopper(),
    "walker2d": lambda p: _walker2d(),
    "swimmer": lambda p: _swimmer(),
}


def make_robot(key: str, partition: str) -> tuple[RobotDef, Partition]:
    """The robot and its agents' joints; raises ConfigError naming the valid partitions."""
    robot = ROBOTS[key](partition)
    if partition not in robot.partitions:
        raise ConfigError(f"env.partition: robot {key!r} has no partition {partition!r}; valid choices: "
                          f"{', '.join(robot.partitions)}")
    return robot, robot.partitions[partition]
