"""Tests of the SUMO ATSC grid (safenet_atsc): network, game protocol, signals read back from SUMO,
spill-back, seeding, registration and the classic controllers. Small grids and short episodes."""
from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from safenet.errors import ConfigError, SafenetError
from safenet.testing import check_game
from safenet_atsc import plugin
from safenet_atsc.config import AtscConfig, FixedTimeConfig, MaxPressureConfig
from safenet_atsc.controllers import FixedTime, MaxPressure
from safenet_atsc.game import make, parallel_env
from safenet_atsc.network import build

# Phase states written out by hand, links ordered N, E, S, W approaches × (right, straight, left)
PHASES = ["GGgrrrGGgrrr", "rrrGrGrrrGrG", "rrrGGrrrrGGr", "rrrGGGrrrrrr", "rrrrrrrrrGGG"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("atsc-cache"))


def small(cache: str, **kw) -> dict:
    return {"rows": 2, "cols": 2, "episode_s": 100, "cache_dir": cache, **kw}


def test_network_is_generated_deterministically(tmp_path):
    a = build(AtscConfig(rows=2, cols=3, cache_dir=str(tmp_path / "a")))
    b = build(AtscConfig(rows=2, cols=3, cache_dir=str(tmp_path / "b")))
    for name in ("grid.net.xml", "demand.rou.xml", "layout.json"):
        assert (a.folder / name).read_bytes() == (b.folder / name).read_bytes(), name
    assert a.folder.name == b.folder.name
    assert build(AtscConfig(rows=2, cols=3, cache_dir=str(tmp_path / "a"))).folder == a.folder     # cached
    assert build(AtscConfig(rows=2, cols=3, demand_scale=2.0, cache_dir=str(tmp_path / "a"))).folder != a.folder
    assert a.intersections == ("I0_0", "I0_1", "I0_2", "I1_0", "I1_1", "I1_2")
    assert a.edges == ((0, 1), (0, 3), (1, 2), (1, 4), (2, 5), (3, 4), (4, 5))
    assert a.phase_states() == PHASES


def test_links_and_phases_read_back_from_sumo(cache):
    g = make(small(cache, yellow_s=3), num_envs=1, seed=0)
    try:
        g.reset(seed=0)
        links = g.query("links")[0]
        # I0_0 (north-west corner): from N0 lane 0 turns right to W0, lane 1 goes straight to I1_0, lane 2 left to I0_1
        assert links[0][:3] == [("N0-I0_0_0", "I0_0-W0_0"), ("N0-I0_0_1", "I0_0-I1_0_1"), ("N0-I0_0_2", "I0_0-I0_1_2")]
        assert links[0][9] == ("W0-I0_0_0", "I0_0-I1_0_0")                 # from W (driving east), right is south
        assert all(len(x) == 12 for x in links)
        assert g.query("tl_states")[0] == [PHASES[0]] * 4
        g.set_trace(True)
        _, _, _, _, _, info = g.step(np.array([[0, 0, 0, 0]]))
        assert info["trace"][0] == [[PHASES[0]] * 4] * 5                    # no change: 5 s of phase 0
        _, _, _, _, _, info = g.step(np.array([[2, 0, 1, 4]]))
        trace = info["trace"][0]
        assert len(trace) == 5
        want_yellow = ["yyyrrryyyrrr", PHASES[0], "yyyrrryyyrrr", "yyyrrryyyrrr"]   # 0→2, kept, 0→1, 0→4
        want_green = [PHASES[2], PHASES[0], PHASES[1], PHASES[4]]
        assert trace[:3] == [want_yellow] * 3 and trace[3:] == [want_green] * 2  # yellow_s = 3 of 5 s
        assert g.query("tl_states")[0] == want_green
        assert info["phase"][0].tolist() == [2, 0, 1, 4] and info["phase_age"][0].tolist() == [1, 2, 1, 1]
        _, _, _, _, _, info = g.step(np.array([[3, 0, 2, 4]]))
        # 2→3: W loses straight and right (E keeps them); 1→2: E and W lose their lefts; 4 unchanged
        assert info["trace"][0][0] == ["rrrGGrrrryyr", PHASES[0], "rrrGryrrrGry", PHASES[4]]
    finally:
        g.close()


def test_protocol_and_episode_metrics(cache):
    g = make(small(cache), num_envs=2, seed=0)
    try:
        check_game(g, steps=45)
    finally:
        g.close()
    g = make(small(cache, episode_s=300), num_envs=2, seed=0)                # long enough for trips to end
    try:
        g.reset(seed=3)
        infos = [g.step(np.full((2, 4), 2 * (k // 4 % 2)))[5] for k in range(60)]   # NS and EW through, 20 s each
        last = infos[-1]
        assert "episode_metrics" in last and all("episode_metrics" not in i for i in infos[:-1])
        m = last["episode_metrics"]
        assert set(m) == {"queue", "waiting", "delay", "throughput", "teleports", "spill_back"}
        assert (m["throughput"] > 0).all() and (m["queue"] >= 0).all() and (m["teleports"] == 0).all()
        assert last["final_decision"].tolist() == [60, 60] and last["decision"].tolist() == [0, 0]
        frame = g.render(1)
        assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8
    finally:
        g.close()


def test_observation_reward_and_pressure_match_sumo(cache):
    g = make(small(cache, demand_scale=3.0), num_envs=1, seed=0)
    try:
        g.reset(seed=0)
        for _ in range(12):
            obs, reward, _, _, _, info = g.step(np.array([[0, 2, 0, 2]]))
        halting = g.query("halting")[0]
        lay = g.layout
        for i in range(4):
            assert reward[0, i] == -sum(halting[x] for x in lay.in_lanes[i])
            assert info["queue"][0, i] == -reward[0, i]
            np.testing.assert_array_equal(obs[0, i, 12:], np.eye(5)[[0, 2, 0, 2][i]])
        assert (obs[..., :12] >= 0).all() and (obs[..., :12] <= 2).all() and obs[..., :12].max() > 0
        # pressure of a phase = sum over its green links of (incoming - outgoing) vehicles, from the obs counts
        assert info["pressure"].shape == (1, 4, 5)
    finally:
        g.close()


def test_seeded_episodes_repeat(cache):
    def run(seed: int) -> list[np.ndarray]:
        g = make(small(cache, demand_scale=2.0), num_envs=2, seed=0)
        try:
            out = [g.reset(seed=seed)[0]]
            rng = np.random.default_rng(0)
            for _ in range(25):                                              # crosses an episode end
                obs, r, c, _, done, info = g.step(rng.integers(0, 5, (2, 4)))
                out += [obs, r, c]
                if done.any():
                    out += [v for v in info["episode_metrics"].values()]
            return out
        finally:
            g.close()
    a, b, c = run(1), run(1), run(2)
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a, c))
    assert not np.array_equal(a[-3], a[-2])                                  # the two copies differ


def test_spill_back_cost_fires_when_a_lane_fills(cache):
    """Holding 'W-all' everywhere never serves the east approaches: their lanes fill up and spill back."""
    cfg = small(cache, edge_length=80.0, demand_scale=4.0, episode_s=900, spill_back_fraction=0.8)
    g = make(cfg, num_envs=1, seed=0)
    try:
        g.reset(seed=0)
        lengths = g.query("lane_lengths")[0]
        lay, fired = g.layout, np.zeros(4)
        for _ in range(150):
            _, _, cost, _, _, _ = g.step(np.full((1, 4), 4))
            halting = g.query("halting")[0]
            for i in range(4):
                full = any(halting[x] >= 0.8 * lengths[x] / 7.5 for x in lay.in_lanes[i])
                assert cost[0, i, 0] == float(full)
            fired += cost[0, :, 0]
        assert fired[1] > 0 and fired[3] > 0                                # I0_1 and I1_1 get the east flows
    finally:
        g.close()


def test_workers_end_on_close(cache):
    g = make(small(cache), num_envs=2, seed=0)
    pids = g.worker_pids
    g.reset(seed=0)
    assert all(Path(f"/proc/{p}").exists() for p in pids)
    g.close()
    assert not any(Path(f"/proc/{p}").exists() for p in pids)
    g.close()                                                               # twice is fine
    with pytest.raises(SafenetError, match="closed"):
        g.reset(seed=0)


def test_bad_config_and_actions(cache):
    for kw, key in (({"rows": 0}, "env.rows"), ({"yellow_s": 5}, "env.yellow_s"), ({"episode_s": 101}, "env.episode_s"),
                    ({"spill_back_fraction": 0.0}, "env.spill_back_fraction"), ({"edge_length": 10.0}, "env.edge_length"),
                    ({"cost_limit": -1.0}, "env.cost_limit"), ({"obs_phase": "yes"}, "env.obs_phase")):
        with pytest.raises(ConfigError, match=key):
            make({"cache_dir": cache, **kw})
    with pytest.raises(ConfigError, match="unknown ATSC config keys.*'row'"):
        make({"row": 3})
    with pytest.raises(ConfigError, match="algo.plan"):
        FixedTimeConfig(plan=[1, 2])
    with pytest.raises(ConfigError, match="algo.min_green"):
        MaxPressureConfig(min_green=0)
    g = make(small(cache), num_envs=1, seed=0)
    try:
        with pytest.raises(SafenetError, match="reset"):
            g.step(np.zeros((1, 4), dtype=np.int64))
        g.reset(seed=0)
        with pytest.raises(SafenetError, match="valid actions are 0..4"):
            g.step(np.full((1, 4), 5))
    finally:
        g.close()


def test_parallel_env_api(cache):
    from pettingzoo.test import parallel_api_test

    env = parallel_env(**small(cache))
    try:
        parallel_api_test(env, num_cycles=30)
        obs, _ = env.reset(seed=0)
        assert set(obs) == {"I0_0", "I0_1", "I1_0", "I1_1"} and obs["I0_0"].shape == (17,)
        _, rewards, _, _, infos = env.step({a: 0 for a in env.agents})
        assert infos["I1_1"]["cost"].shape == (1,) and isinstance(rewards["I0_0"], float)
    finally:
        env.close()


# -- controllers (no SUMO needed for the rules) ----------------------------------------------------

def _spec(n: int = 2):
    from safenet.game import GameSpec
    from safenet.graph import Graph

    return GameSpec(name="t", agents=tuple(f"i{k}" for k in range(n)), graph=Graph.line(n), obs_dims=(17,) * n,
                    action_kind="discrete", action_dims=(5,) * n, episode_length=10, tags=plugin.TAGS)


def test_fixed_time_cycles_the_plan():
    algo = FixedTime(_spec(), FixedTimeConfig(plan=[2, 0, 1, 1, 0], offset=1))
    got = [algo.act(None, {"decision": np.array([d, d + 4])})[0][:, 0].tolist() for d in range(5)]
    # cycle [0, 0, 2, 3] shifted by one decision
    assert got == [[0, 0], [2, 2], [3, 3], [0, 0], [0, 0]]
    with pytest.raises(SafenetError, match="decision"):
        algo.act(None, {})


def test_max_pressure_rule():
    algo = MaxPressure(_spec(), MaxPressureConfig(min_green=2))
    pressure = np.array([[[1.0, 5.0, 0.0, 0.0, 0.0], [3.0, 3.0, 1.0, 0.0, 0.0]]])
    act = lambda phase, age: algo.act(None, {"pressure": pressure, "phase": np.array([phase]),    # noqa: E731
                                             "phase_age": np.array([age])})[0][0].tolist()
    assert act([0, 0], [0, 0]) == [1, 0]                 # episode start may switch; a tie keeps the phase
    assert act([0, 2], [1, 1]) == [0, 2]                 # held for 1 < min_green decisions: no switch
    assert act([0, 2], [2, 3]) == [1, 0]


def test_registration_and_entry_point():
    from safenet.plugins import PluginManager

    pm = PluginManager(autoload=False, plugins=[("safenet_atsc", plugin)])
    assert not pm.failed
    spec, implied = pm.environment("atsc_grid_3x4")
    assert implied == {"rows": "3", "cols": "4"}
    spec, implied = pm.environment("atsc_grid_5x5")
    assert implied == {} and spec.defaults == {"rows": 5, "cols": 5} and spec.config is AtscConfig
    assert pm.algorithm("max-pressure").incompatibility(frozenset({"discrete"}))      # needs traffic_signals
    assert pm.algorithm("fixed-time").incompatibility(plugin.TAGS) is None
    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["safenet"] == {"safenet_atsc": "safenet_atsc.plugin"}
    assert {"eclipse-sumo>=1.20", "libsumo>=1.20", "sumolib>=1.20"} <= set(meta["project"]["dependencies"])


def test_controllers_train_through_the_trainer(cache, tmp_path):
    import safenet.testing
    from safenet.plugins import PluginManager
    from safenet.testing import check_algorithm

    pm = PluginManager(autoload=False, strict=True, plugins=[("safenet_atsc", plugin)])
    row = check_algorithm("max-pressure", "atsc_grid_2x2", tmp_path, pm=pm,
                          overrides=[f"env.cache_dir={cache}", "env.episode_s=100", "trainer.n_envs=1",
                                     "trainer.eval_episodes=1"])
    assert row["rollout/env/throughput"] > 0 and "eval/env/queue" in row
    assert safenet.testing is not None


_PARENT = """
import sys, time
import numpy as np
from safenet_atsc.game import make
g = make({"rows": 2, "cols": 2, "episode_s": 100, "cache_dir": sys.argv[1]}, num_envs=2, seed=0)
g.reset(seed=0)
print(" ".join(map(str, g.worker_pids)), flush=True)
try:
    while True:
        g.step(np.zeros((2, 4), dtype=np.int64))
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" not in status.read_text()
    except OSError:
        return False


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_workers_end_when_the_parent_is_killed_or_interrupted(cache, how):
    import signal
    import subprocess
    import sys
    import time

    parent = subprocess.Popen([sys.executable, "-c", _PARENT, cache], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        time.sleep(0.5)
        parent.send_signal(getattr(signal, how))
        parent.wait(timeout=20)
        deadline = time.time() + 15
        while any(_alive(p) for p in pids) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids), f"workers {pids} outlived their parent ({how})"
        if how == "SIGINT":                                                  # Ctrl-C reached the parent only
            assert "interrupted" in parent.stdout.read()
    finally:
        parent.kill()
        parent.wait()


_STATIC = """
import json, sys
import libsumo
from safenet_atsc.config import AtscConfig
from safenet_atsc.network import build
from safenet_atsc.sim import sumo_args
cfg = AtscConfig(rows=2, cols=2, episode_s=400, cache_dir=sys.argv[1])
lay = build(cfg)
libsumo.start(sumo_args(lay, cfg, 0))
trace = []
for _ in range(int(sys.argv[2])):
    libsumo.simulationStep()
    trace.append([libsumo.trafficlight.getRedYellowGreenState(x) for x in lay.intersections])
libsumo.close()
print(json.dumps(trace))
"""


def test_fixed_time_controller_reproduces_the_networks_static_programme(cache):
    """SUMO running the generated network's own programme shows, second by second, what the game shows
    under the fixed-time controller (after the first yellow, which the game skips at an episode start)."""
    import json
    import subprocess
    import sys

    seconds = 170                                                           # two 80 s cycles and a bit
    static = json.loads(subprocess.run([sys.executable, "-c", _STATIC, cache, str(seconds)], capture_output=True,
                                       text=True, check=True).stdout)
    g = make(small(cache, episode_s=400), num_envs=1, seed=0)
    try:
        algo = FixedTime(g.spec, FixedTimeConfig())
        obs, info = g.reset(seed=0)
        g.set_trace(True)
        trace = []
        while len(trace) < seconds:
            obs, _, _, _, _, info = g.step(algo.act(obs, info)[0])
            trace += info["trace"][0]
    finally:
        g.close()
    assert trace[2:seconds] == static[2:seconds]
    assert trace[:2] == [[PHASES[0]] * 4] * 2 and static[0] == ["rrrrrrrrryyy"] * 4     # yellow W-all → NS-through
    assert len({s[0] for s in static}) == 10                                # 5 greens and 5 yellows per cycle
