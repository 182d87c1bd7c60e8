"""MJCF models generated in code (no XML files are copied or written to disk).

Geometry, masses and joint parameters are the published ones of Gymnasium's MuJoCo robots (v5),
MaMuJoCo's segmented ant and the Safe MAMuJoCo obstacles (``shared/specs/safe_mamujoco.md``); the
XML text is produced here. Every builder returns a string for ``mujoco.MjModel.from_xml_string``,
so parallel environments never share a file (the reference's generated-XML race cannot happen).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_ASSETS = """
  <asset>
    <texture builtin="gradient" height="100" rgb1="1 1 1" rgb2="0 0 0" type="skybox" width="100"/>
    <texture builtin="flat" height="1278" mark="cross" markrgb="1 1 1" name="texgeom" random="0.01"
             rgb1="0.8 0.6 0.4" rgb2="0.8 0.6 0.4" type="cube" width="127"/>
    <texture builtin="checker" height="100" name="texplane" rgb1="0 0 0" rgb2="0.8 0.8 0.8" type="2d" width="100"/>
    <material name="MatPlane" reflectance="0.5" shininess="1" specular="1" texrepeat="60 60" texture="texplane"/>
    <material name="geom" texture="texgeom" texuniform="true"/>
  </asset>"""
_LIGHT = ('<light cutoff="100" diffuse="1 1 1" dir="-0 0 -1.3" directional="true" exponent="1" '
          'pos="0 0 1.3" specular=".1 .1 .1"/>')
_VISUAL = '<visual><global offwidth="1280" offheight="960"/></visual>'


def _v(*xs: float) -> str:
    return " ".join(repr(float(x)) for x in xs)


def _floor(size: str = "40 40 40", z: float = 0.0, extra: str = 'conaffinity="1" ') -> str:
    return (f'<geom {extra}condim="3" material="MatPlane" name="floor" pos="0 0 {z!r}" '
            f'rgba="0.8 0.9 0.8 1" size="{size}" type="plane"/>')


def _doc(name: str, compiler: str, option: str, defaults: str, world: str, actuators: list[str],
         extra: str = "") -> str:
    acts = "\n    ".join(actuators)
    return (f'<mujoco model="{name}">\n  <compiler {compiler}/>\n  <option {option}/>\n  {_VISUAL}\n'
            f'  <default>\n    {defaults}\n  </default>{_ASSETS}\n  <worldbody>\n    {_LIGHT}\n{world}\n'
            f'  </worldbody>\n{extra}  <actuator>\n    {acts}\n  </actuator>\n</mujoco>\n')


def _motor(joint: str, gear: float, ctrl: bool = True, name: str = "") -> str:
    rng = 'ctrllimited="true" ctrlrange="-1.0 1.0" ' if ctrl else ""
    nm = f'name="{name}" ' if name else ""
    return f'<motor {nm}{rng}joint="{joint}" gear="{gear!r}"/>'


# ------------------------------------------------------------------------------------------------
# Walls (Safe MAMuJoCo corridor) and the centre line of the zig-zag corridor
# ------------------------------------------------------------------------------------------------

TAN30 = math.tan(math.radians(30.0))


def corridor_centre(x: np.ndarray | float) -> np.ndarray | float:
    """Centre line ``c(x)`` of the zig-zag corridor (spec: slopes ±tan 30° with corners at 20, 60, 100).

    ``x``: an array, or a float (then a float comes back, without numpy's per-call cost)."""
    if isinstance(x, float):
        if x < 20.0:
            return x * TAN30
        if x < 60.0:
            return -(x - 40.0) * TAN30
        return (x - 80.0) * TAN30 if x < 100.0 else 20.0 * TAN30
    x = np.asarray(x, dtype=np.float64)
    return np.where(x < 20.0, x * TAN30,
                    np.where(x < 60.0, -(x - 40.0) * TAN30,
                             np.where(x < 100.0, (x - 80.0) * TAN30, 20.0 * TAN30)))


@dataclass(frozen=True)
class Wall:
    """A thin static box: centre ``(x, y, z)``, half sizes, yaw in degrees."""

    x: float
    y: float
    yaw: float
    half_length: float = 20.0
    half_width: float = 0.01
    half_height: float = 0.7
    z: float = 1.0

    def xml(self, name: str) -> str:
        return (f'<geom conaffinity="1" contype="1" condim="3" name="{name}" type="box" '
                f'pos="{_v(self.x, self.y, self.z)}" euler="0 0 {self.yaw!r}" '
                f'size="{_v(self.half_length, self.half_width, self.half_height)}" rgba="0.9 0.4 0.4 0.6"/>')


def zigzag_walls(offset: float) -> list[Wall]:
    """Three pairs of walls at ``c(x) ± offset``: centred at x = 0 (+30°), 40 (−30°), 80 (+30°)."""
    out = []
    for cx, yaw in ((0.0, 30.0), (40.0, -30.0), (80.0, 30.0)):
        for side in (1.0, -1.0):
            out.append(Wall(cx, side * offset, yaw))
    return out


def _walls_xml(walls: list[Wall] | None) -> str:
    return "\n".join("    " + w.xml(f"wall{i}") for i, w in enumerate(walls or ()))


# ------------------------------------------------------------------------------------------------
# Ant (4 legs, 8 hinges) — Gymnasium Ant-v5 geometry
# ------------------------------------------------------------------------------------------------

#: (leg body, direction of the leg in the xy plane, ankle axis, ankle range in degrees), legs 1..4.
ANT_LEGS = (
    ("front_left_leg", (1, 1), (-1, 1), (30, 70)),
    ("front_right_leg", (-1, 1), (1, 1), (-70, -30)),
    ("back_leg", (-1, -1), (-1, 1), (-70, -30)),
    ("right_back_leg", (1, -1), (1, 1), (30, 70)),
)
#: Actuator order of Ant-v5 (leg 4 first).
ANT_ACTUATOR_ORDER = ("hip_4", "ankle_4", "hip_1", "ankle_1", "hip_2", "ankle_2", "hip_3", "ankle_3")


def _leg(body: str, k: str, d: tuple[float, float], first: tuple[float, float], hip: str, ankle: str,
         ankle_axis: tuple[float, float], ankle_range: tuple[float, float], indent: str) -> str:
    """One two-joint leg: a fixed stub towards ``first``, a hip (yaw) and an ankle, each 0.2 / 0.4 long."""
    fx, fy = first
    dx, dy = 0.2 * d[0], 0.2 * d[1]
    i = indent
    return (f'{i}<body name="{body}" pos="0 0 0">\n'
            f'{i}  <geom fromto="0 0 0 {_v(fx, fy)} 0" name="{body}_stub_geom" size="0.08" type="capsule"/>\n'
            f'{i}  <body name="{body}_hip" pos="{_v(fx, fy)} 0">\n'
            f'{i}    <joint axis="0 0 1" name="{hip}" pos="0 0 0" range="-30 30" type="hinge"/>\n'
            f'{i}    <geom fromto="0 0 0 {_v(dx, dy)} 0" name="{body}_thigh_geom" size="0.08" type="capsule"/>\n'
            f'{i}    <body name="{body}_foot" pos="{_v(dx, dy)} 0">\n'
            f'{i}      <joint axis="{_v(*ankle_axis)} 0" name="{ankle}" pos="0 0 0" range="{_v(*ankle_range)}" type="hinge"/>\n'
            f'{i}      <geom fromto="0 0 0 {_v(2 * dx, 2 * dy)} 0" name="{body}_ankle_geom" size="0.08" type="capsule"/>\n'
            f'{i}    </body>\n{i}  </body>\n{i}</body>\n')


_ANT_DEFAULTS = ('<joint armature="1" damping="1" limited="true"/>\n    '
                 '<geom conaffinity="0" condim="3" density="5.0" friction="1 0.5 0.5" margin="0.01" '
                 'rgba="0.8 0.6 0.4 1"/>')
_FREE = '<joint armature="0" damping="0" limited="false" margin="0.01" name="root" pos="0 0 0" type="free"/>'
_TRACK = '<camera name="track" mode="trackcom" pos="0 -3 0.3" xyaxes="1 0 0 0 0 1"/>'


def ant_xml(walls: list[Wall] | None = None, timestep: float = 0.01) -> str:
    legs = "".join(_leg(body, str(k), d, (0.2 * d[0], 0.2 * d[1]), f"hip_{k}", f"ankle_{k}", ax, rng, "      ")
                   for k, (body, d, ax, rng) in enumerate(ANT_LEGS, start=1))
    world = (f'    {_floor()}\n{_walls_xml(walls)}\n    <body name="torso" pos="0 0 0.75">\n      {_TRACK}\n'
             f'      <geom name="torso_geom" pos="0 0 0" size="0.25" type="sphere"/>\n      {_FREE}\n{legs}    </body>')
    return _doc("ant", 'angle="degree" coordinate="local" inertiafromgeom="true"',
                f'integrator="RK4" timestep="{timestep!r}"', _ANT_DEFAULTS, world,
                [_motor(j, 150) for j in ANT_ACTUATOR_ORDER])


# ------------------------------------------------------------------------------------------------
# ManyAgent (segmented) Ant — MaMuJoCo's ManySegmentAnt geometry, n segments on one rigid spine
# ------------------------------------------------------------------------------------------------

def many_segment_ant_xml(n_segments: int, walls: list[Wall] | None = None, timestep: float = 0.01) -> str:
    """Segment 0 carries the free joint and two forward legs; each further segment is a capsule 1 m
    behind its parent (rigidly attached) with two backward legs. Actuators: hip1, ankle1, hip2,
    ankle2 of each segment, in segment order (gear 150)."""
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")
    i0 = "      "
    body = (_leg("front_left_leg_0", "0", (1, 1), (0.2, 0.2), "hip1_0", "ankle1_0", (-1, 1), (30, 70), i0)
            + _leg("right_back_leg_0", "0", (1, -1), (0.2, -0.2), "hip2_0", "ankle2_0", (1, 1), (30, 70), i0))
    tail = ""
    for s in range(1, n_segments):
        ind = "      " + "  " * s
        seg = (f'{ind}<body name="torso_{s}" pos="-1 0 0">\n'
               f'{ind}  <geom density="100" fromto="1 0 0 0 0 0" name="spine_geom_{s}" size="0.1" type="capsule"/>\n')
        seg += _leg(f"front_right_leg_{s}", str(s), (-1, 1), (0.0, 0.2), f"hip1_{s}", f"ankle1_{s}", (1, 1),
                    (-70, -30), ind + "  ")
        seg += _leg(f"back_leg_{s}", str(s), (-1, -1), (0.0, -0.2), f"hip2_{s}", f"ankle2_{s}", (-1, 1),
                    (-70, -30), ind + "  ")
        body += seg
        tail = f"{ind}</body>\n" + tail
    world = (f'    {_floor()}\n{_walls_xml(walls)}\n    <body name="torso_0" pos="0 0 0.75">\n      {_TRACK}\n'
             f'      {_FREE}\n{body}{tail}    </body>')
    acts = [_motor(f"{j}_{s}", 150) for s in range(n_segments) for j in ("hip1", "ankle1", "hip2", "ankle2")]
    return _doc("many_segment_ant", 'angle="degree" coordinate="local" inertiafromgeom="true"',
                f'integrator="RK4" timestep="{timestep!r}"', _ANT_DEFAULTS, world, acts)


# ------------------------------------------------------------------------------------------------
# HalfCheetah (planar, 6 hinges) and the Coupled HalfCheetah with the "bomb"
# ------------------------------------------------------------------------------------------------

#: (joint, body pos, joint damping, stiffness, range, geom axis angle, geom pos, geom half-length, gear, child?)
_CHEETAH_BACK = (
    ("bthigh", (-.5, -0.0), 6.0, 240.0, (-.52, 1.05), -3.8, (.1, -.13), .145, 120.0),
    ("bshin", (.16, -.25), 4.5, 180.0, (-.785, .785), -2.03, (-.14, -.07), .15, 90.0),
    ("bfoot", (-.28, -.14), 3.0, 120.0, (-.4, .785), -.27, (.03, -.097), .094, 60.0),
)
_CHEETAH_FRONT = (
    ("fthigh", (.5, 0.0), 4.5, 180.0, (-1.0, .7), .52, (-.07, -.12), .133, 120.0),
    ("fshin", (-.14, -.24), 3.0, 120.0, (-1.2, .87), -.6, (.065, -.09), .106, 60.0),
    ("ffoot", (.13, -.18), 1.5, 60.0, (-.5, .5), -.6, (.045, -.07), .07, 30.0),
)
CHEETAH_JOINTS = tuple(j[0] for j in _CHEETAH_BACK + _CHEETAH_FRONT)
CHEETAH_GEARS = tuple(j[-1] for j in _CHEETAH_BACK + _CHEETAH_FRONT)


def _cheetah_chain(chain: tuple, suffix: str, indent: str) -> str:
    out, close = "", ""
    for depth, (name, (bx, bz), damp, stiff, rng, ang, (gx, gz), half, _) in enumerate(chain):
        i = indent + "  " * depth
        tint = "" if name.endswith("thigh") else ' rgba="0.9 0.6 0.6 1"'
        out += (f'{i}<body name="{name}{suffix}" pos="{_v(bx, 0, bz)}">\n'
                f'{i}  <joint axis="0 1 0" damping="{damp!r}" name="{name}{suffix}" pos="0 0 0" range="{_v(*rng)}" '
                f'stiffness="{stiff!r}" type="hinge"/>\n'
                f'{i}  <geom axisangle="0 1 0 {ang!r}" name="{name}{suffix}" pos="{_v(gx, 0, gz)}"{tint} '
                f'size="{_v(0.046, half)}" type="capsule"/>\n')
        close = f"{i}</body>\n" + close
    return out + close


def _cheetah(suffix: str, y: float, site: bool, camera: str = "track") -> str:
    i = "      "
    root = "".join(f'{i}<joint armature="0" axis="{ax}" damping="0" limited="false" name="{nm}{suffix}" pos="0 0 0" '
                   f'stiffness="0" type="{tp}"/>\n'
                   for nm, ax, tp in (("rootx", "1 0 0", "slide"), ("rootz", "0 0 1", "slide"),
                                      ("rooty", "0 1 0", "hinge")))
    s = f'{i}<site name="tendon_site{suffix}" pos="0 0 0" size="0.1"/>\n' if site else ""
    return (f'    <body name="torso{suffix}" pos="0 {y!r} 0.7">\n{s}'
            f'{i}<camera name="{camera}" mode="trackcom" pos="0 -3 0.3" xyaxes="1 0 0 0 0 1"/>\n{root}'
            f'{i}<geom fromto="-.5 0 0 .5 0 0" name="torso{suffix}" size="0.046" type="capsule"/>\n'
            f'{i}<geom axisangle="0 1 0 .87" name="head{suffix}" pos=".6 0 .1" size="0.046 .15" type="capsule"/>\n'
            + _cheetah_chain(_CHEETAH_BACK, suffix, i) + _cheetah_chain(_CHEETAH_FRONT, suffix, i) + "    </body>")


_CHEETAH_DEFAULTS = ('<joint armature=".1" damping=".01" limited="true" solimplimit="0 .8 .03" solreflimit=".02 1" '
                     'stiffness="8"/>\n    <geom conaffinity="0" condim="3" contype="1" friction=".4 .1 .1" '
                     'rgba="0.8 0.6 .4 1" solimp="0.0 0.8 0.01" solref="0.02 1"/>\n    '
                     '<motor ctrllimited="true" ctrlrange="-1 1"/>')
#: Total mass the cheetah models are scaled to (Gymnasium's ``settotalmass="14"``, applied after compiling).
CHEETAH_TOTAL_MASS = 14.0


def half_cheetah_xml() -> str:
    world = f'    {_floor()}\n{_cheetah("", 0.0, site=False)}'
    return _doc("cheetah", 'angle="radian" coordinate="local" inertiafromgeom="true"',
                'gravity="0 0 -9.81" timestep="0.01"', _CHEETAH_DEFAULTS, world,
                [f'<motor gear="{g!r}" joint="{j}" name="{j}"/>' for j, g in zip(CHEETAH_JOINTS, CHEETAH_GEARS)])


#: The bomb: a box on an x slide joint, starting at x = BOMB_START and stopped at BOMB_START + BOMB_TRAVEL.
BOMB_START = -34.0
BOMB_TRAVEL = 30.0


def coupled_half_cheetah_xml(bomb: bool = True) -> str:
    """Two cheetahs at y = -1 (suffix ``0``) and y = +1 (suffix ``1``) joined by a spatial tendon between
    their torsos (range [1.5, 3.5], stiffness 0.1); optionally the bomb (half size 0.1 x 2.3 x 1.3,
    density 1e-4, slide joint with damping 0.2, motor gear 120) starting 34 m behind."""
    world = f'    {_floor("150 40 40")}\n{_cheetah("0", -1.0, True, "track")}\n{_cheetah("1", 1.0, True, "track1")}'
    acts = [f'<motor gear="{g!r}" joint="{j}{k}" name="{j}{k}"/>' for k in "01"
            for j, g in zip(CHEETAH_JOINTS, CHEETAH_GEARS)]
    if bomb:
        world += (f'\n    <body name="bomb" pos="{BOMB_START!r} 0 1.4">\n'
                  f'      <joint axis="1 0 0" damping="0.2" name="bomb_slide" pos="0 0 0" limited="true" '
                  f'range="0 {BOMB_TRAVEL!r}" stiffness="0" armature="0" type="slide"/>\n'
                  f'      <geom conaffinity="1" contype="1" condim="3" name="bomb_geom" density="0.0001" type="box" '
                  f'size="0.1 2.3 1.3" rgba="1 0.3 0.3 0.8"/>\n    </body>')
        acts.append('<motor gear="120" joint="bomb_slide" name="bomb_motor" ctrllimited="false"/>')
    tendon = ('  <tendon>\n    <spatial name="coupling" width="0.05" rgba=".95 .3 .3 1" limited="true" '
              'range="1.5 3.5" stiffness="0.1">\n      <site site="tendon_site0"/>\n      <site site="tendon_site1"/>\n'
              '    </spatial>\n  </tendon>\n')
    return _doc("coupled_cheetah", 'angle="radian" coordinate="local" inertiafromgeom="true"',
                'gravity="0 0 -9.81" timestep="0.01"', _CHEETAH_DEFAULTS, world, acts, extra=tendon)


# ------------------------------------------------------------------------------------------------
# Hopper, Walker2d (planar legs) and Swimmer — Gymnasium v5 geometry
# ------------------------------------------------------------------------------------------------

def _planar_root(indent: str) -> str:
    return "".join(f'{indent}<joint armature="0" axis="{ax}" damping="0" limited="false" name="{nm}" pos="{p}" '
                   f'{ref}stiffness="0" type="{tp}"/>\n'
                   for nm, ax, tp, p, ref in (("rootx", "1 0 0", "slide", "0 0 -1.25", ""),
                                              ("rootz", "0 0 1", "slide", "0 0 -1.25", 'ref="1.25" '),
                                              ("rooty", "0 1 0", "hinge", "0 0 0", "")))


def _planar_leg(suffix: str, foot_x: float, foot_half: float, foot_friction: float, rgba: str, indent: str) -> str:
    i = indent
    c = f' rgba="{rgba}"' if rgba else ""
    q = "0.70710678118654757 0 -0.70710678118654746 0"
    return (f'{i}<body name="thigh{suffix}" pos="0 0 -0.2">\n'
            f'{i}  <joint axis="0 -1 0" name="thigh{suffix}_joint" pos="0 0 0" range="-150 0" type="hinge"/>\n'
            f'{i}  <geom friction="0.9" pos="0 0 -0.225" name="thigh{suffix}_geom"{c} size="0.05 0.225" type="capsule"/>\n'
            f'{i}  <body name="leg{suffix}" pos="0 0 -0.7">\n'
            f'{i}    <joint axis="0 -1 0" name="leg{suffix}_joint" pos="0 0 0.25" range="-150 0" type="hinge"/>\n'
            f'{i}    <geom friction="0.9" name="leg{suffix}_geom"{c} size="0.04 0.25" type="capsule"/>\n'
            f'{i}    <body name="foot{suffix}" pos="{foot_x!r} 0 -0.35">\n'
            f'{i}      <joint axis="0 -1 0" name="foot{suffix}_joint" pos="{-foot_x!r} 0 0.1" range="-45 45" type="hinge"/>\n'
            f'{i}      <geom friction="{foot_friction!r}" pos="{-foot_x / 2!r} 0 0.1" quat="{q}" name="foot{suffix}_geom"{c} '
            f'size="0.06 {foot_half!r}" type="capsule"/>\n'
            f'{i}    </body>\n{i}  </body>\n{i}</body>\n')


def hopper_xml() -> str:
    i = "      "
    world = (f'    {_floor("20 20 .125")}\n    <body name="torso" pos="0 0 1.25">\n'
             f'{i}<camera name="track" mode="trackcom" pos="0 -3 -0.25" xyaxes="1 0 0 0 0 1"/>\n{_planar_root(i)}'
             f'{i}<geom friction="0.9" name="torso_geom" size="0.05 0.2" type="capsule"/>\n'
             + _planar_leg("", 0.13, 0.195, 2.0, "", i) + "    </body>")
    # Hopper's leg joints are named thigh_joint, leg_joint, foot_joint
    defaults = ('<joint armature="1" damping="1" limited="true"/>\n    <motor ctrllimited="true" ctrlrange="-.4 .4"/>\n'
                '    <geom conaffinity="1" condim="1" contype="1" margin="0.001" material="geom" rgba="0.8 0.6 .4 1" '
                'solimp=".8 .8 .01" solref=".02 1"/>')
    return _doc("hopper", 'angle="degree" inertiafromgeom="true"', 'integrator="RK4" timestep="0.002"', defaults,
                world, [_motor(f"{j}_joint", 200.0) for j in ("thigh", "leg", "foot")])


def walker2d_xml() -> str:
    i = "      "
    world = (f'    {_floor()}\n    <body name="torso" pos="0 0 1.25">\n'
             f'{i}<camera name="track" mode="trackcom" pos="0 -3 -0.25" xyaxes="1 0 0 0 0 1"/>\n{_planar_root(i)}'
             f'{i}<geom friction="0.9" name="torso_geom" size="0.05 0.2" type="capsule"/>\n'
             + _planar_leg("", 0.2, 0.1, 1.9, "", i) + _planar_leg("_left", 0.2, 0.1, 1.9, ".7 .3 .6 1", i)
             + "    </body>")
    defaults = ('<joint armature="0.01" damping=".1" limited="true"/>\n    <geom conaffinity="0" condim="3" contype="1" '
                'density="1000" friction=".7 .1 .1" rgba="0.8 0.6 .4 1"/>')
    acts = [_motor(f"{j}{s}_joint", 100.0) for s in ("", "_left") for j in ("thigh", "leg", "foot")]
    return _doc("walker2d", 'angle="degree" inertiafromgeom="true"', 'integrator="RK4" timestep="0.002"', defaults,
                world, acts)


def swimmer_xml() -> str:
    i = "      "
    world = (f'    {_floor("40 40 0.1", z=-0.1, extra="")}\n    <body name="torso" pos="0 0 0">\n'
             f'{i}<camera name="track" mode="trackcom" pos="0 -3 3" xyaxes="1 0 0 0 1 1"/>\n'
             f'{i}<geom density="1000" fromto="1.5 0 0 0.5 0 0" size="0.1" type="capsule"/>\n'
             f'{i}<joint axis="1 0 0" name="slider1" pos="0 0 0" type="slide"/>\n'
             f'{i}<joint axis="0 1 0" name="slider2" pos="0 0 0" type="slide"/>\n'
             f'{i}<joint axis="0 0 1" name="free_body_rot" pos="0 0 0" type="hinge"/>\n'
             f'{i}<body name="mid" pos="0.5 0 0">\n'
             f'{i}  <geom density="1000" fromto="0 0 0 -1 0 0" size="0.1" type="capsule"/>\n'
             f'{i}  <joint axis="0 0 1" limited="true" name="motor1_rot" pos="0 0 0" range="-100 100" type="hinge"/>\n'
             f'{i}  <body name="back" pos="-1 0 0">\n'
             f'{i}    <geom density="1000" fromto="0 0 0 -1 0 0" size="0.1" type="capsule"/>\n'
             f'{i}    <joint axis="0 0 1" limited="true" name="motor2_rot" pos="0 0 0" range="-100 100" type="hinge"/>\n'
             f'{i}  </body>\n{i}</body>\n    </body>')
    defaults = ('<joint armature="0.1"/>\n    <geom conaffinity="0" condim="1" contype="0" material="geom" '
                'rgba="0.8 0.6 .4 1"/>')
    return _doc("swimmer", 'angle="degree" coordinate="local" inertiafromgeom="true"',
                'density="4000" integrator="RK4" timestep="0.01" viscosity="0.1"', defaults, world,
                [_motor("motor1_rot", 150.0), _motor("motor2_rot", 150.0)])
