"""Config keys (``env.*``) and the task table. Light: no MuJoCo import, so ``safenet plugins`` stays fast."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from safenet.errors import ConfigError


@dataclass(frozen=True)
class Family:
    """A task family: one robot, one kind of safety constraint, several agent partitions."""

    robot: str                               # key of safenet_mamujoco.robots.ROBOTS
    scenario: str                            # "corridor" | "bomb" | "velocity" | "none"
    cost_limit: float                        # default per-episode limit of each agent's cost
    partitions: tuple[str, ...] | None       # allowed partitions (None: any "<agents>x<segments>")
    summary: str
    wall_offset: float = 0.0                 # corridor: walls at c(x) ± wall_offset
    thresholds: tuple[tuple[str, float], ...] = ()  # velocity: threshold per partition
    timestep: float | None = None            # None: the robot model's own
    frame_skip: int | None = None
    upside_down_unhealthy: bool = False      # also unhealthy when the torso's z axis points down
    x_velocity_only: bool = False            # velocity cost on the signed v_x (Swimmer: backwards costs nothing)

    def name(self, family: str, partition: str) -> str:
        if self.scenario == "velocity":
            robot = family[len("safety_"):-len("_velocity")]
            return f"safety_{robot}_{partition}_velocity"
        return f"{family}_{partition}"


#: Every task family. Names are public interface; see the README for the facts behind each.
FAMILIES: dict[str, Family] = {
    "safe_manyagent_ant": Family(
        "many_segment_ant", "corridor", 1.0, None, wall_offset=4.5, timestep=0.005, frame_skip=4,
        upside_down_unhealthy=True,
        summary="segmented ant (A agents x S segments, 4 joints each) in a zig-zag corridor; cost near a wall or on falling"),
    "safe_ant": Family(
        "ant", "corridor", 0.2, ("8x1", "2x4", "2x4d", "4x2"), wall_offset=5.0, upside_down_unhealthy=True,
        summary="Ant (8 hinges) in a 10 m zig-zag corridor; cost near a wall or on falling"),
    "safe_coupled_halfcheetah": Family(
        "coupled_half_cheetah", "bomb", 5.0, ("12x1", "2x6", "6x2"),
        summary="two HalfCheetahs joined by a tendon, chased by a sliding bomb; cost within 5 m of it"),
    "safety_ant_velocity": Family(
        "ant", "velocity", 25.0, ("2x4", "4x2"), thresholds=(("2x4", 2.522), ("4x2", 2.418)),
        summary="MaMuJoCo Ant; cost 1 per step with planar speed above the threshold"),
    "safety_halfcheetah_velocity": Family(
        "half_cheetah", "velocity", 25.0, ("6x1", "2x3"), thresholds=(("6x1", 2.932), ("2x3", 3.227)),
        summary="MaMuJoCo HalfCheetah; cost 1 per step with speed above the threshold"),
    "safety_hopper_velocity": Family(
        "hopper", "velocity", 25.0, ("3x1",), thresholds=(("3x1", 0.9613),),
        summary="MaMuJoCo Hopper; cost 1 per step with speed above the threshold"),
    "safety_walker2d_velocity": Family(
        "walker2d", "velocity", 25.0, ("2x3",), thresholds=(("2x3", 1.641),),
        summary="MaMuJoCo Walker2d; cost 1 per step with speed above the threshold"),
    "safety_swimmer_velocity": Family(
        "swimmer", "velocity", 25.0, ("2x1",), thresholds=(("2x1", 0.04891),), x_velocity_only=True,
        summary="MaMuJoCo Swimmer; cost 1 per step with x velocity above the threshold"),
    "manyagent_ant": Family(
        "many_segment_ant", "none", 0.0, None, timestep=0.01, frame_skip=5,
        summary="MaMuJoCo's ManySegmentAnt without walls or costs (the reference scenario for comparisons)"),
}

#: The names the DEC-MAPPO-L / Scal-MAPPO-L papers and safety-gymnasium use, registered one by one.
NAMED_TASKS: dict[str, tuple[str, str]] = {}
for _fam, _parts in (("safe_manyagent_ant", ("2x3", "3x2", "6x1")), ("safe_ant", ("8x1", "2x4", "4x2")),
                     ("safe_coupled_halfcheetah", ("12x1", "2x6", "6x2")),
                     ("safety_ant_velocity", ("2x4", "4x2")), ("safety_halfcheetah_velocity", ("6x1", "2x3")),
                     ("safety_hopper_velocity", ("3x1",)), ("safety_walker2d_velocity", ("2x3",)),
                     ("safety_swimmer_velocity", ("2x1",)), ("manyagent_ant", ("2x3", "3x2", "6x1"))):
    for _p in _parts:
        NAMED_TASKS[FAMILIES[_fam].name(_fam, _p)] = (_fam, _p)

_PARTITION = re.compile(r"(\d+)x(\d+)d?")


def parse_grid_partition(partition: str) -> tuple[int, int]:
    """``"2x3"`` → (2 agents, 3 segments each); raises ConfigError on anything else."""
    m = _PARTITION.fullmatch(partition)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ConfigError(f"env.partition must look like '<agents>x<segments>' (e.g. '2x3'), got {partition!r}")
    return int(m.group(1)), int(m.group(2))


@dataclass
class MamujocoConfig:
    """Config keys of the Safe MAMuJoCo environments (the ``env.*`` section of a run config)."""

    family: str = "safe_ant"             # task family (see the README's task table); set by the env name
    partition: str = "8x1"               # agent partition of the robot's joints; set by the env name
    agent_obsk: int = 1                  # observe joints up to this many hops away (MaMuJoCo's obsk)
    cost_limit: Optional[float] = None   # per-episode limit of each agent's cost; None: the family's default
    episode_length: int = 1000           # steps per episode (truncation)
    threads: int = 0                     # threads stepping the copies; 0: min(the run's CPUs (trainer.cpus), copies)
    walls: bool = True                   # corridor tasks: build the walls physically (false: cost only)
    terminate_when_unhealthy: bool = True  # end an episode when the robot falls (robots with a health rule)
    reset_noise_scale: Optional[float] = None  # None: the robot's Gymnasium default
    velocity_threshold: Optional[float] = None  # velocity tasks: None uses safety-gymnasium's threshold
    render_width: int = 480              # pixels of render() frames and videos
    render_height: int = 360

    def __post_init__(self) -> None:
        validate(self)


def validate(cfg: MamujocoConfig) -> None:
    if cfg.family not in FAMILIES:
        raise ConfigError(f"env.family: unknown task family {cfg.family!r}; valid choices: {', '.join(sorted(FAMILIES))}")
    fam = FAMILIES[cfg.family]
    if fam.partitions is not None and cfg.partition not in fam.partitions:
        raise ConfigError(f"env.partition: {cfg.family} has no partition {cfg.partition!r}; valid choices: "
                          f"{', '.join(fam.partitions)}")
    if fam.partitions is None:
        parse_grid_partition(cfg.partition)
    for key, low in (("agent_obsk", 0), ("episode_length", 1), ("threads", 0), ("render_width", 16),
                     ("render_height", 16)):
        v = getattr(cfg, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ConfigError(f"env.{key} must be an integer >= {low}, got {v!r}")
    for key in ("cost_limit", "reset_noise_scale", "velocity_threshold"):
        v = getattr(cfg, key)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or v != v):
            raise ConfigError(f"env.{key} must be a number >= 0 (or null for the default), got {v!r}")


def config_from(values: dict[str, Any]) -> MamujocoConfig:
    return MamujocoConfig(**values)
