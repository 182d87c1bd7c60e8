"""Reference optima of the team games, as a function and a command.

    python -m safenet_teams.solve multi_access_broadcast
    python -m safenet_teams.solve multi_access_broadcast env.channel_timing=before_acting --prescriptions paper
    python -m safenet_teams.solve demand_response --prescriptions deterministic n_devices=50
    safenet-teams-solve demand_response --grid 401 --json

Prints the optimal expected discounted team return from the initial distribution, for the infinite
horizon and for the game's episode length (what a safenet evaluation's ``ep_disc_return`` measures).
Methods: :mod:`safenet_teams.mabc_solver` and :mod:`safenet_teams.dr_solver`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Sequence

from safenet.config import config_values
from safenet.errors import ConfigError, SafenetError, did_you_mean

GAMES = ("multi_access_broadcast", "demand_response")
#: prescription classes per game; the first is the default (the class `dadc` learns with its defaults)
PRESCRIPTION_CLASSES = {"multi_access_broadcast": ("all", "paper"), "demand_response": ("randomised", "deterministic")}


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def optimal_value(env: str, gamma: float = 0.9, horizon: int | None = None, *, prescriptions: str | None = None,
                  grid: int = 201, merge_tol: float = 1e-6, **env_cfg: Any) -> dict[str, Any]:
    """The optimum of ``env`` (``multi_access_broadcast`` or ``demand_response``) with env config keys
    ``env_cfg`` (an ``env.`` prefix is allowed) for the prescription class ``prescriptions`` (see
    :data:`PRESCRIPTION_CLASSES`; default the first). ``horizon`` defaults to the episode length.
    Returns a JSON-able dict."""
    name = env.strip().lower().replace("-", "_")
    if name not in GAMES:
        raise SafenetError(f"unknown team game {env!r}{did_you_mean(name, GAMES)}; choices: {', '.join(GAMES)}")
    if not 0.0 <= gamma < 1.0:
        raise ConfigError(f"gamma must be in [0, 1), got {gamma}")
    classes = PRESCRIPTION_CLASSES[name]
    prescriptions = classes[0] if prescriptions is None else prescriptions
    if prescriptions not in classes:
        raise ConfigError(f"prescriptions: {name} has the classes {', '.join(classes)}, got {prescriptions!r}")
    env_cfg = {k.removeprefix("env."): v for k, v in env_cfg.items()}
    t0 = time.perf_counter()
    if name == "multi_access_broadcast":
        from .mabc import MabcConfig
        from .mabc_solver import solve_mabc

        if not 0.0 < merge_tol < 1e-3:
            raise ConfigError(f"merge_tol must be in (0, 1e-3), got {merge_tol}")
        cfg = MabcConfig(**config_values(MabcConfig, env_cfg, what=name))
        h = cfg.episode_length if horizon is None else horizon
        sol = solve_mabc(cfg, gamma=gamma, horizon=h, prescriptions=prescriptions, merge_tol=merge_tol)
        where = ("indexed reachable beliefs" if sol.method == "indexed"
                 else f"reachable beliefs merged on a {merge_tol:g} grid")
        out = {"method": f"value iteration over the coordinator's {where} "
                         f"({len(sol.prescriptions)} deterministic prescriptions)",
               "beliefs": sol.n_beliefs, "iterations": sol.iterations, "prescriptions": prescriptions,
               "channel_timing": cfg.channel_timing, "merge_tol": sol.merge_tol,
               "initial_prescription": list(sol.initial_prescription)}
    else:
        from .demand_response import DemandResponseConfig
        from .dr_solver import solve_demand_response

        cfg = DemandResponseConfig(**config_values(DemandResponseConfig, env_cfg, what=name))
        h = cfg.episode_length if horizon is None else horizon
        sol = solve_demand_response(cfg, gamma=gamma, horizon=h, prescriptions=prescriptions, grid=grid)
        out = {"method": f"policy iteration on the number of devices ON ({prescriptions} identical prescriptions"
                         + (f", grid {grid}" if prescriptions == "randomised" else "") + ")",
               "iterations": sol.iterations, "prescriptions": prescriptions}
    return {"env": name, "gamma": gamma, "value": sol.value, "horizon": h, "horizon_value": sol.horizon_value,
            **out, "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
            "seconds": round(time.perf_counter() - t0, 3)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m safenet_teams.solve", description=__doc__.split("\n\n")[0])
    ap.add_argument("env", help=f"one of {', '.join(GAMES)}")
    ap.add_argument("overrides", nargs="*", help="env config values key=value (e.g. n_devices=50)")
    ap.add_argument("--gamma", type=float, default=0.9, help="discount (default 0.9, the paper's)")
    ap.add_argument("--horizon", type=int, default=None, help="finite horizon (default: the episode length)")
    ap.add_argument("--prescriptions", default=None,
                    help="prescription class: multi_access_broadcast all (default: silence, either, both) or paper "
                         "(the paper's 3: either or both may send); demand_response randomised (default, what dadc "
                         "learns) or deterministic")
    ap.add_argument("--grid", type=int, default=201, help="demand_response: grid points per local state")
    ap.add_argument("--merge-tol", type=float, default=1e-6,
                    help="multi_access_broadcast, channel_timing=before_acting: beliefs closer than this per "
                         "coordinate are merged (default 1e-6; 1e-7 moves the value by 2e-11)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_intermixed_args(argv)
    env_cfg = {}
    for item in args.overrides:
        key, eq, value = item.partition("=")
        if not eq or not key:
            print(f"error: override {item!r} must look like key=value", file=sys.stderr)
            return 2
        env_cfg[key] = _parse_value(value)
    try:
        res = optimal_value(args.env, args.gamma, args.horizon, prescriptions=args.prescriptions, grid=args.grid,
                            merge_tol=args.merge_tol, **env_cfg)
    except (SafenetError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(res))
    else:
        what = ", ".join(f"{k}={res[k]}" for k in ("channel_timing", "prescriptions") if k in res)
        print(f"{res['env']}: optimal discounted team return (gamma={res['gamma']}; {what})")
        print(f"  infinite horizon : {res['value']:.6f}")
        print(f"  {res['horizon']} steps{' ' * max(0, 9 - len(str(res['horizon'])))}: {res['horizon_value']:.6f}")
        print(f"  method: {res['method']}; {res['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
