"""Plugin manager: isolation of broken plugins, name clashes, close matches, patterns, compatibility."""
from __future__ import annotations

import enum
import re
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

import safenet.plugins as plugins_mod
import safenet.testing
from safenet import hookimpl
from safenet.algorithm import Algorithm
from safenet.errors import IncompatibleError, RegistryError
from safenet.plugins import PluginManager
from safenet.specs import AlgorithmSpec, EnvSpec, import_string, normalise
from safenet.testing import ToyConfig
from safenet.trainer import Selection


@dataclass
class Cfg:
    x: int = 0


class NullAlgo(Algorithm):
    """A valid factory target for the specs below (never run)."""

    def act(self, obs, info, deterministic=False):
        raise NotImplementedError

    def update(self, rollout):
        raise NotImplementedError


def algo(name: str, requires=(), **kw) -> AlgorithmSpec:
    return AlgorithmSpec(name=name, factory=f"{__name__}:NullAlgo", config=Cfg, requires=frozenset(requires), **kw)


def env(name: str, tags=(), **kw) -> EnvSpec:
    return EnvSpec(name=name, factory="safenet.testing:make_toy", config=ToyConfig, tags=frozenset(tags), **kw)


class Provides:
    """A plugin object registering the given specs."""

    def __init__(self, algos=(), envs=()) -> None:
        self.algos, self.envs = list(algos), list(envs)

    @hookimpl
    def safenet_algorithms(self):
        return self.algos

    @hookimpl
    def safenet_environments(self):
        return self.envs


class Raises:
    def __init__(self) -> None:
        self.ended = 0

    @hookimpl
    def safenet_algorithms(self):
        raise RuntimeError("boom in registration")

    @hookimpl
    def safenet_run_end(self, run, status, error):
        self.ended += 1


def make_pm(*plugins, strict=None, **kw) -> PluginManager:
    pm = PluginManager(autoload=False, strict=strict, **kw)
    for name, obj, dist in plugins:
        pm.add_plugin(obj, name=name, distribution=dist, version="1.0")
    return pm


@pytest.fixture(autouse=True)
def _no_env_plugins(clean_plugin_env):
    """Plugin env vars of the caller's shell do not leak into these tests."""


# ------------------------------------------------------------------------------------------------
# broken plugins
# ------------------------------------------------------------------------------------------------

def test_plugin_whose_registration_raises_is_failed_and_others_register():
    bad = Raises()
    with pytest.warns(UserWarning, match="boom in registration"):
        pm = make_pm(("good1", Provides([algo("alpha")]), "dist-a"), ("bad", bad, "dist-bad"),
                     ("good2", Provides([], [env("world")]), "dist-c"))
    assert [i.name for i in pm.infos] == ["good1", "bad", "good2"]
    info = {i.name: i for i in pm.infos}
    assert info["bad"].status == "failed" and "RuntimeError: boom in registration" in info["bad"].error
    assert "boom in registration" in info["bad"].traceback
    assert info["good1"].status == info["good2"].status == "active"
    assert pm.failed == [info["bad"]]
    assert pm.algorithm("alpha").name == "alpha"
    assert pm.environment("world")[0].name == "world"
    # the failed plugin is unregistered: its lifecycle hooks are never called
    assert not pm.pm.is_registered(bad)
    pm.hook.safenet_run_end(run=None, status="completed", error=None)
    assert bad.ended == 0
    # an unknown-name error points at the plugin that failed to load
    with pytest.raises(RegistryError, match="failed to load: bad"):
        pm.algorithm("beta")


def test_strict_mode_raises(monkeypatch):
    with pytest.raises(RegistryError, match="boom in registration"):
        make_pm(("bad", Raises(), "dist-bad"), strict=True)
    monkeypatch.setenv("SAFENET_STRICT_PLUGINS", "1")
    with pytest.raises(RegistryError, match="'bad'"):
        make_pm(("bad", Raises(), "dist-bad"))


def test_wrong_return_type_and_misspelt_hook_fail_the_plugin():
    class WrongType:
        @hookimpl
        def safenet_algorithms(self):
            return [env("not-an-algo")]

    class Misspelt:
        @hookimpl
        def safenet_algorithm(self):          # missing "s": check_pending must catch it
            return [algo("ghost")]

    with pytest.warns(UserWarning):
        pm = make_pm(("wrong", WrongType(), "d1"), ("typo", Misspelt(), "d2"), ("ok", Provides([algo("fine")]), "d3"))
    info = {i.name: i for i in pm.infos}
    assert info["wrong"].status == "failed" and "not AlgorithmSpec" in info["wrong"].error
    assert info["typo"].status == "failed" and "safenet_algorithm" in info["typo"].error
    assert pm.algorithm_names() == ["fine"]
    assert info["wrong"].environments == [] and info["wrong"].algorithms == []


class Lifecycle(Provides):
    def __init__(self) -> None:
        super().__init__([algo("life")])
        self.ends = 0

    @hookimpl
    def safenet_run_end(self, run, status, error):
        self.ends += 1


def test_registering_the_same_plugin_twice_keeps_the_first_registration():
    obj = Lifecycle()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = make_pm(("first", obj, "dist-a"), ("second", obj, "(SAFENET_PLUGINS)"))
    assert pm.algorithm("life") is obj.algos[0]
    pm.hook.safenet_run_end(run=None, status="completed", error=None)
    assert obj.ends == 1


def test_lifecycle_hooks_reach_registered_plugins():
    obj = Lifecycle()
    pm = make_pm(("first", obj, "dist-a"))
    pm.hook.safenet_run_end(run=None, status="completed", error=None)
    assert obj.ends == 1


# ------------------------------------------------------------------------------------------------
# entry points (faked distributions)
# ------------------------------------------------------------------------------------------------

class FakeDist:
    def __init__(self, name: str, version: str = "0.3") -> None:
        self.metadata, self.version = {"Name": name}, version


class FakeEP:
    def __init__(self, name: str, dist: str, obj=None, error: Exception | None = None) -> None:
        self.name, self.dist, self.obj, self.error, self.loaded = name, FakeDist(dist), obj, error, 0

    def load(self):
        self.loaded += 1
        if self.error is not None:
            raise self.error
        return self.obj


def _fake_entry_points(monkeypatch, eps):
    def entry_points(group=None):
        assert group == plugins_mod.GROUP
        return list(eps)

    monkeypatch.setattr(plugins_mod.md, "entry_points", entry_points)


def test_entry_point_import_failure_does_not_stop_the_others(monkeypatch):
    eps = [FakeEP("a_broken", "safenet-broken", error=ImportError("No module named 'mujoco'")),
           FakeEP("b_good", "safenet-good", Provides([algo("mappo")])),
           FakeEP("c_off", "safenet-off", Provides([algo("off")]))]
    _fake_entry_points(monkeypatch, eps)
    monkeypatch.setenv("SAFENET_DISABLE_PLUGINS", "c_off")
    with pytest.warns(UserWarning, match="mujoco"):
        pm = PluginManager(strict=False)
    info = {i.name: i for i in pm.infos}
    assert info["a_broken"].status == "failed" and "import failed" in info["a_broken"].error
    assert info["a_broken"].distribution == "safenet-broken"
    assert info["b_good"].status == "active" and info["b_good"].version == "0.3"
    assert info["b_good"].algorithms == ["mappo"]
    assert info["c_off"].status == "disabled" and eps[2].loaded == 0
    assert pm.algorithm_names() == ["mappo"]
    with pytest.raises(RegistryError) as err:
        pm.algorithm("maddpg")
    assert "mujoco" in str(err.value)          # the real cause shows up in the unknown-name error


def test_duplicate_entry_point_names_from_two_distributions_are_detected(monkeypatch):
    eps = [FakeEP("same", "safenet-one", Provides([algo("one")])),
           FakeEP("same", "safenet-two", Provides([algo("two")]))]
    _fake_entry_points(monkeypatch, eps)
    with pytest.warns(UserWarning, match="also used by distribution 'safenet-one'"):
        pm = PluginManager()
    assert [i.status for i in pm.infos] == ["active", "failed"]
    assert pm.infos[1].distribution == "safenet-two"


def test_autoload_can_be_disabled(monkeypatch):
    ep = FakeEP("x", "safenet-x", Provides([algo("x")]))
    _fake_entry_points(monkeypatch, [ep])
    monkeypatch.setenv("SAFENET_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = PluginManager()
    assert pm.infos == [] and ep.loaded == 0
    monkeypatch.delenv("SAFENET_DISABLE_PLUGIN_AUTOLOAD")
    assert PluginManager().algorithm_names() == ["x"]


def test_safenet_plugins_env_var(monkeypatch):
    monkeypatch.setenv("SAFENET_PLUGINS", "safenet.testing, no_such_module_xyz")
    with pytest.warns(UserWarning, match="no_such_module_xyz"):
        pm = PluginManager(autoload=False)
    info = {i.name: i for i in pm.infos}
    assert info["safenet.testing"].environments == ["toy_line"]
    assert info["no_such_module_xyz"].status == "failed"
    assert "ModuleNotFoundError" in info["no_such_module_xyz"].error


# ------------------------------------------------------------------------------------------------
# names
# ------------------------------------------------------------------------------------------------

def test_duplicate_algorithm_names_need_dist_prefix():
    a1, a2 = algo("dup", summary="first"), algo("dup", summary="second")
    pm = make_pm(("p_one", Provides([a1]), "safenet-one"), ("p_two", Provides([a2]), "safenet-two"))
    with pytest.raises(RegistryError) as err:
        pm.algorithm("dup")
    msg = str(err.value)
    assert "several plugins" in msg and "safenet-one:dup" in msg and "safenet-two:dup" in msg
    assert pm.algorithm("safenet-one:dup") is a1
    assert pm.algorithm("safenet_two:dup") is a2          # '-'/'_' equivalent in the prefix too
    assert pm.algorithm("p_one:dup") is a1                # the plugin name works as well
    assert pm.algorithm_names() == ["dup"]
    with pytest.raises(RegistryError, match="unknown algorithm"):
        pm.algorithm("safenet-three:dup")


def test_duplicate_environment_names_need_dist_prefix():
    e1, e2 = env("arena"), env("arena")
    pm = make_pm(("p1", Provides([], [e1]), "envs-one"), ("p2", Provides([], [e2]), "envs-two"))
    with pytest.raises(RegistryError) as err:
        pm.environment("arena")
    assert "envs-one:arena" in str(err.value) and "envs-two:arena" in str(err.value)
    assert pm.environment("envs-two:arena")[0] is e2


def test_unknown_name_lists_choices_and_a_close_match_that_resolves():
    pm = make_pm(("p", Provides([algo("dec-mappo-l"), algo("sac")], [env("safe_ant_8x1"), env("grid")]), "d"))
    with pytest.raises(RegistryError) as err:
        pm.algorithm("dec-mapo-l")
    msg = str(err.value)
    assert "unknown algorithm 'dec-mapo-l'" in msg and "valid choices: dec-mappo-l, sac" in msg
    suggestion = re.search(r"did you mean '([^']+)'", msg).group(1)
    assert normalise(suggestion) == "dec_mappo_l"
    assert pm.algorithm(suggestion).name == "dec-mappo-l"
    with pytest.raises(RegistryError) as err:
        pm.environment("safe_ant_8x2")
    msg = str(err.value)
    assert "unknown environment 'safe_ant_8x2'" in msg and "did you mean" in msg
    assert "valid choices: grid, safe_ant_8x1" in msg
    with pytest.raises(RegistryError, match=r"valid choices: \(none installed\)"):
        make_pm().algorithm("sac")


@pytest.mark.parametrize("algo_typed, env_typed", [
    ("dec-mappo-l", "safe_ant_8x1"), ("dec_mappo_l", "safe-ant-8x1"), ("DEC-MAPPO-L", "SAFE_ANT_8X1"),
    (" Dec_Mappo-L ", "Safe-Ant_8x1"),
])
def test_dash_underscore_and_case_are_equivalent(algo_typed, env_typed):
    a = algo("dec-mappo-l")
    e = env("safe_ant_8x1")
    pm = make_pm(("p", Provides([a], [e]), "d"))
    assert pm.algorithm(algo_typed) is a
    assert pm.environment(env_typed) == (e, {})


def test_env_pattern_names_imply_config_values():
    exact = env("toy_line")
    fam = env("toy_line_family", pattern=r"toy_line(?:_(?P<n_agents>\d+)x(?P<episode_length>\d+))?")
    pm = make_pm(("p", Provides([algo("a")], [exact, fam]), "d"))
    spec, implied = pm.environment("Toy-Line-6x12")
    assert spec is fam and implied == {"n_agents": "6", "episode_length": "12"}
    assert pm.environment("toy_line")[0] is exact          # the exact name wins over a matching pattern
    assert pm.environment("toy_line")[1] == {}
    assert pm.environment("d:toy-line-3x2") == (fam, {"n_agents": "3", "episode_length": "2"})
    sel = Selection.resolve("a", "toy-line-6x12", pm)
    assert sel.env is fam and sel.env_name == "toy-line-6x12"
    cfg = sel.compose()
    assert cfg.env.n_agents == 6 and cfg.env.episode_length == 12
    # the implied values are still only defaults: the command line beats them
    assert sel.compose(overrides=["env.n_agents=2"]).env.n_agents == 2
    with pytest.raises(RegistryError, match="unknown environment"):
        pm.environment("toy_line_6")


def test_pattern_with_dash_matches_either_spelling():
    fam = env("grid-family", pattern=r"grid-(?P<n_agents>\d+)")
    pm = make_pm(("p", Provides([], [fam]), "d"))
    assert pm.environment("grid-3") == (fam, {"n_agents": "3"})
    assert pm.environment("grid_3") == (fam, {"n_agents": "3"})


# ------------------------------------------------------------------------------------------------
# compatibility
# ------------------------------------------------------------------------------------------------

KNOWN_FINITE = "finite local states and actions"     # the description of the tag in safenet.game.KNOWN_TAGS


def test_incompatible_algo_env_pair_is_refused_with_the_reason(toy_pm):
    toy_pm.add_plugin(Provides([], [env("cont_arena", tags={"continuous"})]), name="fake", distribution="fake")
    with pytest.raises(IncompatibleError) as err:
        Selection.resolve("sac", "cont_arena", toy_pm)
    msg = str(err.value)
    assert "'sac'" in msg and "'cont_arena'" in msg and "finite" in msg
    assert KNOWN_FINITE in msg
    sel = Selection.resolve("sac", "toy_line", toy_pm)           # a compatible pair resolves
    assert sel.algo.name == "sac" and sel.implied == {}


def test_incompatibility_lists_every_missing_tag():
    a = algo("needy", requires={"finite", "global_state"})
    assert a.incompatibility(frozenset({"finite", "global_state", "discrete"})) is None
    why = a.incompatibility(frozenset({"continuous"}))
    assert "finite" in why and "global_state" in why


# ------------------------------------------------------------------------------------------------
# bookkeeping and spec validation
# ------------------------------------------------------------------------------------------------

def test_listing_helpers(toy_pm):
    assert toy_pm.algorithm_names() == ["sac"]
    assert toy_pm.environment_names() == ["toy_line"]
    sac = toy_pm.algorithm("sac")
    assert toy_pm.plugin_of(sac).name == "safenet_scalable_ac"
    assert toy_pm.plugin_of(toy_pm.environment("toy_line")[0]).name == "toy"
    assert toy_pm.plugin_of(algo("stranger")) is None
    info = {i.name: i for i in toy_pm.infos}
    assert info["safenet_scalable_ac"].provides == "algo:sac"
    assert info["toy"].provides == "env:toy_line"


def test_spec_validation():
    with pytest.raises(RegistryError, match="dataclass"):
        AlgorithmSpec(name="x", factory="m:X", config=dict)
    with pytest.raises(RegistryError, match="dataclass"):
        EnvSpec(name="x", factory="m:X", config=Cfg())          # an instance, not the type
    with pytest.raises(re.error):
        env("bad", pattern="toy_(")
    with pytest.raises(RegistryError, match="module:attribute"):
        import_string("safenet.testing.make_toy")
    assert import_string("safenet.testing:ToyConfig") is ToyConfig
    with pytest.raises(Exception):
        algo("frozen").name = "changed"                          # frozen dataclass
    assert algo("r", requires=["finite"]).requires == frozenset({"finite"})


def test_get_plugin_manager_is_cached_and_refreshable(monkeypatch):
    monkeypatch.setattr(plugins_mod, "_MANAGER", None)
    monkeypatch.setenv("SAFENET_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("SAFENET_PLUGINS", "safenet.testing")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pm = plugins_mod.get_plugin_manager()
    assert plugins_mod.get_plugin_manager() is pm
    assert plugins_mod.get_plugin_manager(refresh=True) is not pm
    assert safenet.testing.__name__ in [i.name for i in pm.infos]


class Mode(enum.Enum):
    A = 1


@dataclass
class Inner:
    k: int = 2


@dataclass
class FineConfig:
    required: int                             # no default: the user must give it
    KNOWN = ("a", "b")                        # ALL_CAPS constants are not fields, on purpose
    limit: typing.ClassVar[int] = 3
    a: int = 1
    b: float = 1                              # an int default for a float is fine
    c: Optional[int] = None
    d: List[int] = field(default_factory=lambda: [1, 2])
    e: Tuple[int, ...] = (1, 2)
    f: Dict[str, float] = field(default_factory=lambda: {"x": 1.0})
    g: Mode = Mode.A
    h: Path = Path("x")
    j: "str" = "ok"
    i: Inner = field(default_factory=Inner)

    def helper(self) -> int:
        return self.a


@dataclass
class WrongConfig:
    flag: bool = 1
    n: int = True
    names: List[str] = field(default_factory=lambda: ["a", 2])
    inner: Inner = field(default_factory=lambda: Inner(k=0.5))
    arr: object = None


def test_config_checks_accept_every_type_a_config_can_hold_and_catch_mismatches():
    from safenet.spec_checks import check_config, check_name

    assert check_config(FineConfig) == []
    problems = {p.field: p.message for p in check_config(WrongConfig)}
    assert set(problems) == {"config.flag", "config.n", "config.names", "config.inner.k", "config.arr"}
    assert "cannot be held by a config" in problems["config.arr"]
    assert check_name("grid_wireless_<R>x<C>", placeholders=True) == []
    assert check_name("grid_wireless_<R>x<C>") != [] and check_name("a" * 65) != [] and check_name("x:y") != []
