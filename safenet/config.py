"""Layered run configuration (omegaconf, no Hydra).

Layers, lowest first — each merged on its own so an error can name its layer:

1. core defaults (:class:`TrainerConfig`, :class:`RunSection`, ``seed``);
2. the algorithm's config dataclass (``algo.*``) and its suggested ``overrides``;
3. the environment's config dataclass (``env.*``), the values its name implies, its ``defaults``
   and suggested ``overrides`` (``algo.*`` suggestions apply only to keys the algorithm has);
4. a preset (``--preset NAME``: ``configs/NAME.yaml``, or a path);
5. each ``--config FILE``;
6. ``key=value`` overrides from the command line.

The schema is structured (typed dataclasses), so unknown keys and wrong types fail with the key's
full path before anything runs.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .device import parse_device
from .errors import ConfigError, close_matches
from .specs import AlgorithmSpec, EnvSpec


@dataclass
class TrainerConfig:
    """The training loop (core defaults)."""

    total_steps: int = 100_000          # environment steps (summed over the n_envs copies)
    n_envs: int = 8                     # copies of the game stepped together
    rollout_steps: int = 0              # steps per copy per iteration; 0: the algorithm's choice
    eval_every_steps: int = 20_000      # env steps between evaluations (0: only at the end; -1: never)
    eval_episodes: int = 16
    eval_deterministic: bool = True     # greedy actions in evaluation (false: sample the policy)
    checkpoint_every: int = 0           # iterations between checkpoints; 0: every checkpoint_interval_s
    checkpoint_interval_s: float = 30.0 # seconds between checkpoints when checkpoint_every is 0
    keep_checkpoints: int = 3
    device: str = "cpu"                 # torch device: cpu, cuda, cuda:<index>, mps (the algorithm must support it)
    cpus: int = 0                       # CPUs the whole run may keep busy (torch and simulator threads); 0: all
    torch_threads: int = 0              # torch intra-op threads; 0: torch's default, at most trainer.cpus
    workers: int = 0                    # Ray rollout workers sharing the n_envs copies; 0: collect in-process


@dataclass
class RunSection:
    """Where and how a run is recorded."""

    dir: str = "runs"                   # parent folder of run directories
    name: str = ""                      # run directory name; empty: <date>-<algo>-<env>-s<seed>
    tensorboard: bool = True            # write TensorBoard events when tensorboard is installed
    progress: str = "auto"              # auto | bar | plain | none
    log_interval_s: float = 10.0        # seconds between plain progress lines


CORE_SECTIONS = ("seed", "trainer", "run", "algo", "env")


def _schema(algo: AlgorithmSpec, env: EnvSpec) -> DictConfig:
    root = dataclasses.make_dataclass("RunConfig", [
        ("seed", int, field(default=0)),
        ("algo", algo.config, field(default_factory=algo.config)),
        ("env", env.config, field(default_factory=env.config)),
        ("trainer", TrainerConfig, field(default_factory=TrainerConfig)),
        ("run", RunSection, field(default_factory=RunSection)),
    ])
    return OmegaConf.structured(root)


def _all_keys(cfg: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(cfg, DictConfig):
        for k in cfg.keys():
            path = f"{prefix}{k}"
            out.append(path)
            out.extend(_all_keys(cfg._get_node(k), path + "."))
    return out


def _leaves(layer: Any, prefix: str = "") -> list[tuple[str, Any]]:
    node = OmegaConf.create(layer) if not isinstance(layer, DictConfig) else layer
    out: list[tuple[str, Any]] = []
    for k in node.keys():
        v = node._get_node(k)
        if isinstance(v, DictConfig) and len(v):
            out += _leaves(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", OmegaConf.to_container(v) if isinstance(v, DictConfig) else v._value()))
    return out


def _merge(cfg: DictConfig, layer: Any, layer_name: str) -> DictConfig:
    try:
        return OmegaConf.merge(cfg, layer)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        if getattr(exc, "full_key", None) or getattr(exc, "key", None):
            raise _as_config_error(exc, cfg, layer_name) from None
        # omegaconf did not say which key: merge the layer's values one at a time to find it
        for path, value in _leaves(layer):
            try:
                OmegaConf.merge(cfg, _nest(path, value))
            except OmegaConfBaseException as one:
                one_key = getattr(one, "full_key", None) or path
                msg = str(one).splitlines()[0] if str(one) else type(one).__name__
                raise ConfigError(f"{layer_name}: bad value for {one_key!r}: {msg}") from None
        raise _as_config_error(exc, cfg, layer_name) from None


def _nest(path: str, value: Any) -> dict:
    out: Any = value
    for part in reversed(path.split(".")):
        out = {part: out}
    return out


def _as_config_error(exc: OmegaConfBaseException, cfg: DictConfig, layer_name: str) -> ConfigError:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    kind = type(exc).__name__
    if kind == "ConfigKeyError" or "not in struct" in msg or "Key '" in msg and "not in" in msg:
        near = close_matches(str(key), _all_keys(cfg))
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        section = str(key).split(".")[0]
        valid = [k for k in _all_keys(cfg) if "." in str(key) and k.startswith(section + ".") and k.count(".") == 1]
        listing = f"; valid keys in {section!r}: {', '.join(k.split('.', 1)[1] for k in valid)}" if valid else ""
        return ConfigError(f"{layer_name}: unknown config key {key!r}{hint}{listing}")
    return ConfigError(f"{layer_name}: bad value for {key!r}: {msg}")


def _only_known(suggestions: Mapping[str, Any], section: DictConfig) -> dict:
    """The suggestions whose keys the section has (nested sections filtered key by key)."""
    out = {}
    for k, v in suggestions.items():
        if k not in section:
            continue
        node = section._get_node(k)
        if isinstance(v, Mapping) and isinstance(node, DictConfig):
            v = _only_known(v, node)
            if not v:
                continue
        out[k] = v
    return out


def find_preset(name: str, search: Sequence[Path] = ()) -> Path:
    """``configs/NAME.yaml`` (searched from the current folder up) or a path to a YAML file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    candidates = []
    for base in [*search, Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[1]]:
        c = base / "configs" / f"{name}.yaml"
        candidates.append(c)
        if c.exists():
            return c
    available = sorted({c.stem for base in [Path.cwd(), Path(__file__).resolve().parents[1]]
                        for c in (base / "configs").glob("*.yaml")})
    near = close_matches(name, available)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ConfigError(f"unknown preset {name!r}{hint}; presets in configs/: {', '.join(available) or '(none)'}")


def load_yaml(path: str | Path, what: str) -> DictConfig:
    try:
        loaded = OmegaConf.load(path)
    except FileNotFoundError:
        raise ConfigError(f"{what}: file not found: {path}") from None
    except Exception as exc:  # yaml errors
        raise ConfigError(f"{what}: cannot parse {path}: {exc}") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{what}: {path} must hold a mapping of config keys")
    return loaded


def parse_overrides(overrides: Iterable[str]) -> DictConfig:
    items = list(overrides)
    for item in items:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override {item!r} must look like key=value (e.g. trainer.total_steps=20000)")
    try:
        return OmegaConf.from_dotlist(items)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"command line: cannot parse overrides: {exc}") from None


def compose(algo: AlgorithmSpec, env: EnvSpec, *, implied: Mapping[str, Any] | None = None,
            preset: str | None = None, files: Sequence[str] = (), overrides: Sequence[str] = ()) -> DictConfig:
    """Build the resolved run config (see the module docstring for the layer order)."""
    cfg = _schema(algo, env)
    OmegaConf.set_struct(cfg, True)
    algo_over = dict(algo.overrides)
    if algo_over:
        cfg = _merge(cfg, {k: v for k, v in algo_over.items() if k != "env"}, f"algorithm {algo.name!r} defaults")
    env_layer: dict[str, Any] = {"env": {**dict(env.defaults), **dict(implied or {})}}
    for section, values in dict(env.overrides).items():
        if section == "algo":
            env_layer["algo"] = _only_known(values, cfg.algo)
        else:
            env_layer[section] = values
    cfg = _merge(cfg, env_layer, f"environment {env.name!r} defaults")
    if preset:
        path = find_preset(preset)
        cfg = _merge(cfg, load_yaml(path, f"preset {preset!r}"), f"preset {path}")
    for f in files:
        cfg = _merge(cfg, load_yaml(f, f"--config {f}"), f"--config {f}")
    if overrides:
        cfg = _merge(cfg, parse_overrides(overrides), "command line")
    validate(cfg)
    return cfg


def validate(cfg: DictConfig) -> None:
    """Missing values and dataclass ``__post_init__`` checks, as :class:`ConfigError`."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"config keys without a value: {', '.join(missing)}")
    try:
        OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise _as_config_error(exc, cfg, "config") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"config: {exc}") from None
    t = cfg.trainer
    for key in ("total_steps", "n_envs"):
        if t[key] <= 0:
            raise ConfigError(f"trainer.{key} must be positive, got {t[key]}")
    if t.workers < 0:
        raise ConfigError(f"trainer.workers must be an integer >= 0 (0: collect in-process), got {t.workers}")
    for key in ("cpus", "torch_threads"):
        if t[key] < 0:
            raise ConfigError(f"trainer.{key} must be an integer >= 0 (0: {'all CPUs' if key == 'cpus' else 'the default'}), got {t[key]}")
    parse_device(t.device)
    if cfg.run.progress not in ("auto", "bar", "plain", "none"):
        raise ConfigError(f"run.progress must be one of auto, bar, plain, none; got {cfg.run.progress!r}")


def config_values(cls: type, cfg: Any = None, *, what: str = "env") -> dict[str, Any]:
    """The keys of config dataclass ``cls`` given as None, a mapping or a dataclass instance.

    Env and algorithm factories use it so they can be called with the trainer's dataclass or with
    plain keyword dicts (PettingZoo factories, notebooks); unknown keys are refused with the valid ones.
    """
    if cfg is None:
        values: dict[str, Any] = {}
    elif dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    elif isinstance(cfg, Mapping):
        values = dict(cfg)
    else:
        raise ConfigError(f"{what} config must be a mapping of keys or a {cls.__name__}, got {type(cfg).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {what} config keys {unknown}; valid keys: {', '.join(sorted(known))}")
    return values


def section_object(section: DictConfig) -> Any:
    """The dataclass instance behind a config section (``cfg.algo`` → the algorithm's config)."""
    return OmegaConf.to_object(section)


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def from_yaml_text(text: str, algo: AlgorithmSpec, env: EnvSpec) -> DictConfig:
    """Re-create a typed config from a saved ``config.yaml`` (used by resume and eval)."""
    cfg = _schema(algo, env)
    OmegaConf.set_struct(cfg, True)
    return _merge(cfg, OmegaConf.create(text), "saved config.yaml")
