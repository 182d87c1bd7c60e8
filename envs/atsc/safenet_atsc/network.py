"""The grid network and its demand, generated deterministically from the config into a cache folder.

Layout: ``rows × cols`` signalised intersections ``I<r>_<c>`` (row 0 is the northernmost), ``edge_length``
apart; every side of the grid has one fringe node per row or column (``N<c>``, ``S<c>``, ``W<r>``,
``E<r>``) where traffic enters and leaves, so every intersection has exactly four approaches. Every
road is two-way with three lanes per direction; at an intersection lane 0 may only turn right, lane 1
only go straight, lane 2 only turn left (12 links, link index ``3 * approach + movement`` with
approaches ``N, E, S, W``). The static programme written into the network is the fixed-time plan
(``FixedTimeConfig``) with the game's yellow rule.

Demand: four OD groups of Poisson flows (seeded by SUMO's ``--seed``), each split evenly over up to
three OD pairs spread along a side of the grid: west→east and east→west at a peak of
``peak_flow_major`` veh/h per group, with the 5-minute ratios ``MAJOR_PROFILE`` from 0 min;
north→south and south→north at ``peak_flow_minor`` with ``MINOR_PROFILE`` from 15 min. The
destination is the mirrored position on the opposite side, so most trips turn. Nothing departs
after ``demand_end_s``.

Files are built by ``netconvert`` from the ``eclipse-sumo`` wheel into
``<cache_dir>/grid-<hash>/`` (the hash covers every input), written to a temporary folder first and
renamed into place, so concurrent builders never see half a network.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from safenet.errors import SafenetError

from .config import AtscConfig, FixedTimeConfig, default_cache_dir
from .signals import APPROACHES, MOVEMENTS, N_PHASES, phase_state, turn, yellow_state

MAJOR_PROFILE = (0.4, 0.7, 0.9, 1.0, 0.75, 0.5, 0.25)   # from 0 min, per 5-minute slot
MINOR_PROFILE = (0.3, 0.8, 0.9, 1.0, 0.8, 0.6, 0.2)     # from 15 min
MINOR_START_S = 900
SLOT_S = 300
FORMAT_VERSION = 2                                       # bump when the generated files change


@dataclass(frozen=True)
class Layout:
    """What the simulation needs to know about a generated network (stored as ``layout.json``)."""

    folder: Path
    intersections: tuple[str, ...]                       # agent order: row-major
    in_lanes: tuple[tuple[str, ...], ...]                # per intersection, 12 incoming lanes by link index
    out_lanes: tuple[tuple[str, ...], ...]               # per intersection, the outgoing lane of each link
    links: tuple[tuple[str, str], ...]                   # (approach, movement) of each link index
    edges: tuple[tuple[int, int], ...]                   # neighbouring intersections (agent indices)

    @property
    def net_file(self) -> Path:
        return self.folder / "grid.net.xml"

    @property
    def route_file(self) -> Path:
        return self.folder / "demand.rou.xml"

    def phase_states(self) -> list[str]:
        return [phase_state(p, list(self.links)) for p in range(N_PHASES)]


def _node(r: int, c: int) -> str:
    return f"I{r}_{c}"


def _neighbour(r: int, c: int, side: int, rows: int, cols: int) -> str:
    """The node on ``side`` (index into APPROACHES) of intersection (r, c)."""
    if side == 0:
        return _node(r - 1, c) if r > 0 else f"N{c}"
    if side == 1:
        return _node(r, c + 1) if c < cols - 1 else f"E{r}"
    if side == 2:
        return _node(r + 1, c) if r < rows - 1 else f"S{c}"
    return _node(r, c - 1) if c > 0 else f"W{r}"


def _positions(k: int) -> list[int]:
    """Up to three evenly spread positions along a side of ``k`` entries."""
    return sorted({int(round(x)) for x in np.linspace(0, k - 1, min(3, k))})


def cache_key(cfg: AtscConfig) -> str:
    keys = ("rows", "cols", "edge_length", "speed_limit", "control_interval_s", "yellow_s", "peak_flow_major",
            "peak_flow_minor", "demand_scale", "demand_end_s")
    blob = json.dumps({"v": FORMAT_VERSION, "plan": FixedTimeConfig().plan, **{k: getattr(cfg, k) for k in keys}},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _plain_xml(cfg: AtscConfig) -> tuple[str, str, str, list[tuple[str, str]]]:
    R, C, L = cfg.rows, cfg.cols, float(cfg.edge_length)
    nodes, edges, cons = [], [], []
    for r in range(R):
        for c in range(C):
            nodes.append(f'  <node id="{_node(r, c)}" x="{(c + 1) * L}" y="{(R - r) * L}" type="traffic_light"/>')
    for c in range(C):
        nodes.append(f'  <node id="N{c}" x="{(c + 1) * L}" y="{(R + 1) * L}" type="dead_end"/>')
        nodes.append(f'  <node id="S{c}" x="{(c + 1) * L}" y="0" type="dead_end"/>')
    for r in range(R):
        nodes.append(f'  <node id="W{r}" x="0" y="{(R - r) * L}" type="dead_end"/>')
        nodes.append(f'  <node id="E{r}" x="{(C + 1) * L}" y="{(R - r) * L}" type="dead_end"/>')
    seen = set()
    for r in range(R):
        for c in range(C):
            me = _node(r, c)
            for side in range(4):
                other = _neighbour(r, c, side, R, C)
                for a, b in ((other, me), (me, other)):
                    if (a, b) not in seen:
                        seen.add((a, b))
                        edges.append(f'  <edge id="{a}-{b}" from="{a}" to="{b}" numLanes="3" speed="{cfg.speed_limit}"/>')
            for side in range(4):
                src = _neighbour(r, c, side, R, C)
                for m in range(3):
                    dst = _neighbour(r, c, turn(side, m), R, C)
                    cons.append(f'  <connection from="{src}-{me}" to="{me}-{dst}" fromLane="{m}" toLane="{m}" '
                                f'tl="{me}" linkIndex="{3 * side + m}"/>')
    links = [(APPROACHES[s], MOVEMENTS[m]) for s in range(4) for m in range(3)]
    tll = _programme_xml(cfg, links)
    nod = "<nodes>\n" + "\n".join(nodes) + "\n</nodes>\n"
    edg = "<edges>\n" + "\n".join(edges) + "\n</edges>\n"
    con = "<connections>\n" + "\n".join(cons) + "\n</connections>\n"
    return nod, edg, con + "\n" + tll, links


def fixed_time_programme(cfg: AtscConfig, links: list[tuple[str, str]], plan: list[int]) -> list[tuple[int, str]]:
    """``(duration_s, state)`` of one cycle of the fixed-time plan, as the game's yellow rule shows it:
    a phase held for ``k`` decisions starts with the yellow from the previous phase, then green."""
    greens = [(p, k) for p, k in enumerate(plan) if k > 0]
    out: list[tuple[int, str]] = []
    for i, (p, k) in enumerate(greens):
        prev = greens[i - 1][0]
        new = phase_state(p, links)
        total = k * cfg.control_interval_s
        if prev != p and cfg.yellow_s:
            out.append((cfg.yellow_s, yellow_state(phase_state(prev, links), new)))
            total -= cfg.yellow_s
        out.append((total, new))
    return out


def _programme_xml(cfg: AtscConfig, links: list[tuple[str, str]]) -> str:
    # the cycle starts with the yellow into phase 0; the game starts each episode in phase 0 without
    # it, so the two differ only in the first yellow_s seconds of an episode
    prog = fixed_time_programme(cfg, links, FixedTimeConfig().plan)
    phases = "".join(f'\n    <phase duration="{d}" state="{s}"/>' for d, s in prog)
    return "".join(f'  <tlLogic id="{_node(r, c)}" type="static" programID="fixed" offset="0">{phases}\n  </tlLogic>\n'
                   for r in range(cfg.rows) for c in range(cfg.cols))


def _demand_xml(cfg: AtscConfig) -> str:
    R, C = cfg.rows, cfg.cols
    groups = [  # (name, pairs (from edge, to edge), peak, profile, start)
        ("we", [(f"W{r}-{_node(r, 0)}", f"{_node(R - 1 - r, C - 1)}-E{R - 1 - r}") for r in _positions(R)],
         cfg.peak_flow_major, MAJOR_PROFILE, 0),
        ("ew", [(f"E{r}-{_node(r, C - 1)}", f"{_node(R - 1 - r, 0)}-W{R - 1 - r}") for r in _positions(R)],
         cfg.peak_flow_major, MAJOR_PROFILE, 0),
        ("ns", [(f"N{c}-{_node(0, c)}", f"{_node(R - 1, C - 1 - c)}-S{C - 1 - c}") for c in _positions(C)],
         cfg.peak_flow_minor, MINOR_PROFILE, MINOR_START_S),
        ("sn", [(f"S{c}-{_node(R - 1, c)}", f"{_node(0, C - 1 - c)}-N{C - 1 - c}") for c in _positions(C)],
         cfg.peak_flow_minor, MINOR_PROFILE, MINOR_START_S),
    ]
    flows = []
    for name, pairs, peak, profile, start in groups:
        for j, (src, dst) in enumerate(pairs):
            for s, ratio in enumerate(profile):
                begin, end = start + s * SLOT_S, min(start + (s + 1) * SLOT_S, cfg.demand_end_s)
                rate = peak * ratio * cfg.demand_scale / len(pairs) / 3600.0
                if end <= begin or rate <= 0:
                    continue
                flows.append((begin, f'  <flow id="{name}{j}_{s}" type="car" begin="{begin}" end="{end}" from="{src}" '
                                     f'to="{dst}" period="exp({rate:.6f})" departLane="best" departSpeed="max"/>'))
    flows.sort(key=lambda f: f[0])
    vtype = '  <vType id="car" length="5" minGap="2.5" maxSpeed="20" accel="2.6" decel="4.5" sigma="0.5"/>'
    return "<routes>\n" + vtype + "\n" + "\n".join(f for _, f in flows) + "\n</routes>\n"


def sumo_binary(name: str) -> str:
    """Path of a SUMO tool shipped in the ``eclipse-sumo`` wheel (e.g. ``netconvert``)."""
    try:
        import sumo
    except ImportError as exc:  # pragma: no cover - a dependency of the distribution
        raise SafenetError("the ATSC grid needs SUMO: pip install eclipse-sumo libsumo sumolib") from exc
    path = Path(sumo.SUMO_HOME) / "bin" / name
    if not path.exists():
        raise SafenetError(f"SUMO tool {name!r} not found at {path}")
    return str(path)


def build(cfg: AtscConfig) -> Layout:
    """The network and demand for ``cfg``, generated into the cache on first use."""
    root = Path(cfg.cache_dir or default_cache_dir())
    folder = root / f"grid-{cache_key(cfg)}"
    if not (folder / "layout.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            _generate(cfg, tmp)
            try:
                os.rename(tmp, folder)
            except OSError:
                if not (folder / "layout.json").exists():  # another process won the race otherwise
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return load_layout(folder)


def _generate(cfg: AtscConfig, out: Path) -> None:
    nod, edg, con, links = _plain_xml(cfg)
    tll_start = con.index("  <tlLogic")
    (out / "grid.nod.xml").write_text(nod)
    (out / "grid.edg.xml").write_text(edg)
    (out / "grid.con.xml").write_text(con[:tll_start])
    (out / "grid.tll.xml").write_text("<tlLogics>\n" + con[tll_start:] + "</tlLogics>\n")
    cmd = [sumo_binary("netconvert"), "--node-files", "grid.nod.xml", "--edge-files", "grid.edg.xml",
           "--connection-files", "grid.con.xml", "--tllogic-files", "grid.tll.xml", "--output-file", "grid.net.xml",
           "--no-turnarounds", "true", "--offset.disable-normalization", "true", "--no-warnings", "true"]
    res = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
    if res.returncode != 0:
        raise SafenetError(f"netconvert failed ({res.returncode}): {res.stderr.strip()[-500:]}")
    net = out / "grid.net.xml"                       # drop the build time from the header: same input, same bytes
    net.write_text(re.sub(r"generated on \S+ by", "generated by", net.read_text(), count=1))
    (out / "demand.rou.xml").write_text(_demand_xml(cfg))
    R, C = cfg.rows, cfg.cols
    inters = [_node(r, c) for r in range(R) for c in range(C)]
    in_lanes, out_lanes = [], []
    for r in range(R):
        for c in range(C):
            me = _node(r, c)
            ins, outs = [], []
            for side in range(4):
                src = _neighbour(r, c, side, R, C)
                for m in range(3):
                    dst = _neighbour(r, c, turn(side, m), R, C)
                    ins.append(f"{src}-{me}_{m}")
                    outs.append(f"{me}-{dst}_{m}")
            in_lanes.append(ins)
            out_lanes.append(outs)
    index = {name: i for i, name in enumerate(inters)}
    edges = sorted({tuple(sorted((index[a], index[b]))) for a in inters for b in
                    (_neighbour(*map(int, a[1:].split("_")), s, R, C) for s in range(4)) if b in index})
    layout = {"intersections": inters, "in_lanes": in_lanes, "out_lanes": out_lanes,
              "links": [list(x) for x in links], "edges": [list(e) for e in edges]}
    (out / "layout.json").write_text(json.dumps(layout, indent=1))


def load_layout(folder: Path) -> Layout:
    d = json.loads((folder / "layout.json").read_text())
    return Layout(folder=folder, intersections=tuple(d["intersections"]),
                  in_lanes=tuple(tuple(x) for x in d["in_lanes"]), out_lanes=tuple(tuple(x) for x in d["out_lanes"]),
                  links=tuple(tuple(x) for x in d["links"]), edges=tuple(tuple(e) for e in d["edges"]))
