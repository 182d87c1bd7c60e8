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

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from omegaconf.nodes import StringNode

from .device import CHOICES as DEVICE_CHOICES, parse_device
from .errors import ConfigError, close_matches
from .specs import AlgorithmSpec, EnvSpec
from .validation import YAML_BOOL_WORDS, show_value, allowed_text, check_config, param


#: the seeds a run accepts (numpy's legacy seeding takes 32-bit seeds; the game, algorithm and
#: evaluation streams are derived from it with numpy's SeedSequence)
SEED_MAX = 2**32 - 1


def _device_problem(value: Any) -> str | None:
    try:
        parse_device(str(value))
    except ConfigError:
        return f"one of {DEVICE_CHOICES}"
    return None


def _run_name_problem(value: Any) -> str | None:
    name = str(value)
    if name in (".", "..") or "/" in name or "\\" in name or name.startswith("~") or Path(name).is_absolute():
        return "a plain folder name inside run.dir (no '/', '..' or absolute path; set run.dir for the parent)"
    return None


def _dir_problem(value: Any) -> str | None:
    return "a folder path (not empty)" if not str(value).strip() else None


@dataclass
class TrainerConfig:
    """The training loop (core defaults)."""

    total_steps: int = param(100_000, ge=1)          # environment steps (summed over the n_envs copies)
    n_envs: int = param(8, ge=1)                     # copies of the game stepped together
    rollout_steps: int = param(0, ge=0)              # steps per copy per iteration; 0: the algorithm's choice
    eval_every_steps: int = param(20_000, ge=-1)     # env steps between evaluations (0: only at the end; -1: never)
    eval_episodes: int = param(16, ge=1)
    eval_deterministic: bool = True                  # greedy actions in evaluation (false: sample the policy)
    checkpoint_every: int = param(0, ge=0)           # iterations between checkpoints; 0: every checkpoint_interval_s
    checkpoint_interval_s: float = param(30.0, ge=0) # seconds between checkpoints when checkpoint_every is 0 (0: every iteration)
    keep_checkpoints: int = param(3, ge=1)
    # torch device: cpu, cuda, cuda:<index>, mps (the algorithm must support it, and this machine have it)
    device: str = param("cpu", check=_device_problem)
    cpus: int = param(0, ge=0)                       # CPUs the whole run may keep busy (torch and simulator threads); 0: all
    torch_threads: int = param(0, ge=0)              # torch intra-op threads; 0: torch's default, at most trainer.cpus
    workers: int = param(0, ge=0)                    # Ray rollout workers sharing the n_envs copies; 0: collect in-process


@dataclass
class RunSection:
    """Where and how a run is recorded."""

    dir: str = param("runs", check=_dir_problem)     # parent folder of run directories
    name: str = param("", check=_run_name_problem)   # run directory name; empty: <date>-<algo>-<env>-s<seed>
    tensorboard: bool = True                         # write TensorBoard events when tensorboard is installed
    progress: str = param("auto", choices=("auto", "bar", "plain", "none"))
    log_interval_s: float = param(10.0, gt=0)        # seconds between plain progress lines


CORE_SECTIONS = ("seed", "trainer", "run", "algo", "env")


def _schema(algo: AlgorithmSpec, env: EnvSpec) -> DictConfig:
    root = dataclasses.make_dataclass("RunConfig", [
        ("seed", int, param(0, ge=0, le=SEED_MAX)),
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


def _merge(cfg: DictConfig, layer: Any, layer_name: str, raw: Mapping[str, str] | None = None) -> DictConfig:
    """``cfg`` with ``layer`` merged on top; an error names the layer, the full key, the value given and
    what the key accepts. ``raw``: the text the user typed for each key (command-line overrides)."""
    try:
        return OmegaConf.merge(cfg, layer)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        if getattr(exc, "full_key", None) or getattr(exc, "key", None):
            raise _as_config_error(exc, cfg, layer_name, layer, raw) from None
        # omegaconf did not say which key: merge the layer's values one at a time to find it
        for path, value in _leaves(layer):
            try:
                OmegaConf.merge(cfg, _nest(path, value))
            except OmegaConfBaseException as one:
                if not (getattr(one, "full_key", None) or getattr(one, "key", None)):
                    one.full_key = path  # type: ignore[attr-defined]
                raise _as_config_error(one, cfg, layer_name, layer, raw) from None
        raise _as_config_error(exc, cfg, layer_name, layer, raw) from None


def _nest(path: str, value: Any) -> dict:
    out: Any = value
    for part in reversed(path.split(".")):
        out = {part: out}
    return out


def _given(layer: Any, key: str, raw: Mapping[str, str] | None) -> str | None:
    """The value ``layer`` gives ``key``, as the user wrote it (when known)."""
    if raw and key in raw:
        return raw[key]
    try:
        node = layer if isinstance(layer, DictConfig) else OmegaConf.create(layer)
        value = OmegaConf.select(node, key, default=None, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - only used to word a message
        return None
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value)
    return show_value(value)


def _as_config_error(exc: OmegaConfBaseException, cfg: DictConfig, layer_name: str, layer: Any = None,
                     raw: Mapping[str, str] | None = None) -> ConfigError:
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
    given = _given(layer, str(key), raw) if layer is not None else None
    allowed = allowed_text(cfg, str(key))
    if given is not None and allowed:
        return ConfigError(f"{layer_name}: bad value for {key!r}: {key}={given}: must be {allowed}")
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


#: the folder holding the core package (a checkout's root, with ``configs/``, in an editable install)
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def find_preset(name: str, search: Sequence[Path] = ()) -> Path:
    """``configs/NAME.yaml`` (searched from the current folder up, then next to the package, so it
    works from any directory) or a path to a YAML file."""
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


def raw_overrides(overrides: Iterable[str]) -> dict[str, str]:
    """``key -> value`` exactly as typed on the command line."""
    return dict(item.split("=", 1) for item in overrides if "=" in item)


def _string_node(cfg: DictConfig, key: str) -> bool:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        node = node._get_node(part)
    return isinstance(node, StringNode)


def merge_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Merge ``key=value`` overrides. A string key keeps the word typed (``run.progress=off`` is the
    string ``off``, not YAML's boolean false)."""
    layer = parse_overrides(overrides)
    raw = raw_overrides(overrides)
    for key, text in raw.items():
        if text.strip().lower() in YAML_BOOL_WORDS and _string_node(cfg, key):
            OmegaConf.update(layer, key, text.strip(), force_add=True)
    return _merge(cfg, layer, "command line", raw)


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
        cfg = merge_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def validate(cfg: DictConfig) -> None:
    """Every check of a composed config, as :class:`ConfigError` naming the key: missing values, the
    dataclasses' ``__post_init__`` checks, then the constraints declared on every field
    (:mod:`safenet.validation`) and finite floats everywhere."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"config keys without a value: {', '.join(missing)}")
    try:
        OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise _as_config_error(exc, cfg, "config") from None
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"config: {exc}") from None
    check_config(cfg)


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
