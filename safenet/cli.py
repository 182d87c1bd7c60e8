"""The ``safenet`` command: plugins, train, eval, plot, config."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Sequence

from .errors import SafenetError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="safenet", description="Safe, networked, decentralized multi-agent RL.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sp = sub.add_parser("plugins", help="list installed plugins, what they provide, and load errors")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("--traceback", action="store_true", help="show full tracebacks of failed plugins")

    for name, helptext in (("train", "train an algorithm on an environment"), ("config", "print the resolved config")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("--algo", help="algorithm name (see `safenet plugins`)")
        sp.add_argument("--env", help="environment name (see `safenet plugins`)")
        sp.add_argument("--preset", help="a preset: configs/NAME.yaml or a YAML path")
        sp.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML config file (repeatable)")
        sp.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. trainer.total_steps=20000")
        if name == "train":
            sp.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")

    sp = sub.add_parser("sweep", help="run a grid of algos x envs x seeds x config values on Ray Tune (resumable)")
    sp.add_argument("--algo", required=True, help="algorithm names, comma-separated")
    sp.add_argument("--env", required=True, help="environment names, comma-separated")
    sp.add_argument("--seeds", type=int, default=1, metavar="N", help="seeds 0..N-1 (1)")
    sp.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                    help="a config key and its values (repeatable; trials are the product)")
    sp.add_argument("--name", help="sweep folder under <run.dir>/sweeps/ (default: from the command, so a rerun resumes)")
    sp.add_argument("--address", help="join this Ray cluster (default: a local Ray sized to this machine)")
    sp.add_argument("--max-concurrent", type=int, default=0, metavar="K", help="at most K trials at once (0: as CPUs allow)")
    sp.add_argument("--cpus-per-trial", type=int, default=1, metavar="C", help="CPUs each trial reserves and may use (1)")
    sp.add_argument("--table-interval", type=float, default=10.0, metavar="S", help="seconds between live tables (10)")
    sp.add_argument("--preset", help="a preset: configs/NAME.yaml or a YAML path")
    sp.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML config file (repeatable)")
    sp.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides shared by every trial")

    sp = sub.add_parser("doctor", help="check the installation: plugins load, every default config composes")
    sp.add_argument("--build", action="store_true", help="also build one copy of every environment")

    sp = sub.add_parser("eval", help="evaluate a trained run deterministically")
    sp.add_argument("run_dir")
    sp.add_argument("--episodes", type=int, default=32)
    sp.add_argument("--seed", type=int, default=12345)
    sp.add_argument("--checkpoint", help="checkpoint file (default: the latest)")
    sp.add_argument("--device", help="torch device to evaluate on (default: the run's trainer.device when this "
                    "machine has it, else cpu)")
    mode = sp.add_mutually_exclusive_group()
    mode.add_argument("--deterministic", dest="deterministic", action="store_true", default=None,
                      help="greedy actions (the default unless the run's trainer.eval_deterministic is false)")
    mode.add_argument("--stochastic", dest="deterministic", action="store_false", help="sample the policy")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--video", metavar="FILE", help="also write a video of one episode of the policy "
                    "(.gif with Pillow; .mp4 needs imageio with ffmpeg); the environment must render")
    sp.add_argument("--video-steps", type=int, default=300, metavar="N", help="at most N steps in the video (300)")

    sp = sub.add_parser("plot", help="plot reward and cost curves of runs or sweeps (seeds aggregated)")
    sp.add_argument("run_dirs", nargs="+", help="run directories and/or sweep folders (their trials)")
    sp.add_argument("-o", "--output", default="curves.png")
    sp.add_argument("--eval", action="store_true", help="plot evaluation curves instead of training episodes")
    return p


def cmd_plugins(args) -> int:
    from .plugins import get_plugin_manager
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    pm = get_plugin_manager()
    if args.json:
        print(json.dumps([{"name": i.name, "distribution": i.distribution, "version": i.version, "status": i.status,
                           "algorithms": i.algorithms, "environments": i.environments, "error": i.error,
                           "warnings": i.warnings}
                          for i in pm.infos], indent=2))
        return 0
    table = Table(title="safenet plugins")
    for col in ("Plugin", "Distribution", "Version", "Status", "Provides"):
        table.add_column(col)
    for i in pm.infos:
        status = {"active": "[green]active", "failed": "[red]failed", "disabled": "[yellow]disabled"}[i.status]
        provides = i.provides if i.status == "active" else (i.error or "")
        if i.warnings:
            provides += "".join(f"\n[yellow]warning: {escape(w)}" for w in i.warnings)
        table.add_row(i.name, i.distribution, i.version, status, provides)
    console = Console(width=max(100, Console().width))
    console.print(table)
    if pm.algorithms:
        console.print("[bold]Algorithms")
        for name in pm.algorithm_names():
            for reg in pm.algorithms[name.replace("-", "_").lower()]:
                req = f"  [dim](needs {', '.join(sorted(reg.spec.requires))})" if reg.spec.requires else ""
                console.print(f"  {reg.spec.name:24s} {reg.spec.summary}{req}")
    if pm.environments:
        console.print("[bold]Environments")
        for reg in sorted(pm.environments, key=lambda r: r.spec.name):
            label = reg.spec.name + (" (pattern)" if reg.spec.pattern else "")
            console.print(f"  {label:34s} {reg.spec.summary}")
    if not pm.infos:
        print("no plugins installed (pip install safenet-grid safenet-scalable-ac, or see docs/writing-plugins.md)")
    if args.traceback:
        for i in pm.failed:
            print(f"\n--- {i.name} ({i.distribution}) ---\n{i.traceback}")
    return 0


def _selection(args):
    from .trainer import Selection

    if not args.algo or not args.env:
        raise SafenetError("both --algo and --env are required (see `safenet plugins` for the choices)")
    return Selection.resolve(args.algo, args.env)


def cmd_config(args) -> int:
    from .config import to_yaml

    sel = _selection(args)
    cfg = sel.compose(preset=args.preset, files=args.config, overrides=args.overrides)
    print(to_yaml(cfg), end="")
    return 0


def cmd_train(args) -> int:
    from .trainer import resume_run, start_run

    if args.resume:
        if args.algo or args.env or args.config or args.preset:
            raise SafenetError("--resume takes the run's own config; give only key=value overrides with it")
        trainer = resume_run(args.resume, list(args.overrides))
    else:
        sel = _selection(args)
        cfg = sel.compose(preset=args.preset, files=args.config, overrides=args.overrides)
        trainer = start_run(sel, cfg, argv=sys.argv)
        print(f"run directory: {trainer.run.dir.resolve()}")
        print(f"game: {trainer.spec.summary()}")
    final = trainer.train()
    print(f"finished at {trainer.env_steps} env steps; results in {trainer.run.dir.resolve()}")
    keys = [k for k in final if k.startswith(("rollout/ep_return", "rollout/ep_disc_return", "eval/ep_return", "eval/ep_disc_return", "rollout/ep_cost/", "eval/ep_cost/", "limit/", "rollout/env/", "eval/env/"))]
    for k in keys:
        print(f"  {k:32s} {final[k]:.4g}")
    print(f"  metrics: {trainer.run.dir / 'metrics.csv'}; plot with: safenet plot {trainer.run.dir}")
    return 0


def cmd_sweep(args) -> int:
    from .sweep import GridKey, plan_sweep, split_names
    from .sweep_ray import require_ray, run_sweep

    require_ray()                                    # say how to install Ray before anything else
    if args.max_concurrent < 0:
        raise SafenetError(f"--max-concurrent must be >= 0 (0: as the CPUs allow), got {args.max_concurrent}")
    plan = plan_sweep(split_names(args.algo, "algo"), split_names(args.env, "env"), args.seeds,
                      [GridKey.parse(g) for g in args.grid], args.overrides, name=args.name, preset=args.preset,
                      files=args.config, cpus_per_trial=args.cpus_per_trial)
    print(f"sweep {plan.name}: {len(plan.trials)} trial(s) in {plan.dir}")
    failed, rows = run_sweep(plan, address=args.address, max_concurrent=args.max_concurrent,
                             cpus_per_trial=args.cpus_per_trial, table_interval_s=args.table_interval)
    print_summary(rows)
    print(f"summary: {plan.dir / 'summary.csv'}; curves: {plan.dir / 'summary.png'} (safenet plot {plan.dir})")
    if failed:
        print(f"{failed} trial(s) failed; rerun the same command to retry them (finished trials are reused)",
              file=sys.stderr)
    return 1 if failed else 0


def print_summary(rows: list) -> None:
    from rich.console import Console
    from rich.table import Table

    if not rows:
        return
    cols = [c for c in rows[0] if c not in ("trial", "node", "error")]
    table = Table(title="sweep summary")
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*("-" if isinstance(r.get(c), float) and r[c] != r[c] else
                        f"{r[c]:.4g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols))
    Console(width=max(160, Console().width)).print(table)
    for r in rows:
        if r.get("error"):
            print(f"  {r['trial']} failed: {r['error']}")


def cmd_doctor(args) -> int:
    """Strict checks a plugin author or CI can run: every problem is listed, then exit 1 if any."""
    import warnings

    from .doctor import diagnose
    from .plugins import PluginManager, PluginWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)      # doctor lists them below, once each
        pm = PluginManager(strict=False)                     # load everything, whatever SAFENET_STRICT_PLUGINS says
    report = diagnose(pm, build=args.build)
    print(report.summary())
    for p in report.problems:
        print(f"  problem: {p}")
    print("ok" if not report.problems else f"{len(report.problems)} problem(s)")
    return 0 if not report.problems else 1


def cmd_eval(args) -> int:
    from .trainer import algo_gamma, evaluate, load_trained, make_game

    from .config import SEED_MAX
    from .device import parse_device
    from .paths import output_file

    if args.episodes <= 0:
        raise SafenetError(f"--episodes must be positive, got {args.episodes}")
    if not 0 <= args.seed <= SEED_MAX:
        raise SafenetError(f"--seed {args.seed}: must be an integer in [0, {SEED_MAX}]")
    if args.device is not None:
        parse_device(args.device, "--device")
    if args.video:
        if args.video_steps <= 0:
            raise SafenetError(f"--video-steps must be positive, got {args.video_steps}")
        output_file(args.video, "--video", VIDEO_FORMATS, kind="video")
    if args.checkpoint and not Path(args.checkpoint).is_file():
        raise SafenetError(f"--checkpoint {args.checkpoint}: no such file; the run's checkpoints are in "
                           f"{Path(args.run_dir) / 'checkpoints'}")
    trained = load_trained(args.run_dir, min(args.episodes, 64), args.seed, args.checkpoint, device=args.device)
    sel, cfg, game, algo, state, ckpt = (trained.sel, trained.cfg, trained.game, trained.algo, trained.state,
                                         trained.checkpoint)
    deterministic = bool(cfg.trainer.eval_deterministic) if args.deterministic is None else args.deterministic
    if args.video:
        out = write_policy_video(algo, make_game(sel, cfg, 1, args.seed), args.video, steps=args.video_steps,
                                 seed=args.seed, deterministic=deterministic)
        print(f"wrote video {out}")
    res = evaluate(algo, game, args.episodes, seed=args.seed, deterministic=deterministic, gamma=algo_gamma(cfg))
    spec = game.spec
    limits = spec.cost_limit_array()
    if args.json:
        print(json.dumps({"checkpoint": str(ckpt), "env_steps": int(state["env_steps"]), **res}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    how = "deterministic" if deterministic else "stochastic"
    table = Table(title=f"{sel.algo.name} on {sel.env_name}: {args.episodes} {how} episodes "
                        f"({ckpt.name}, {int(state['env_steps'])} env steps)")
    for col in ("metric", "value", "limit", "within limit"):
        table.add_column(col)
    table.add_row("episode reward (mean over agents)", f"{res['eval/ep_return']:.4f}", "", "")
    if "eval/ep_disc_return" in res:
        table.add_row("discounted episode reward (mean over agents)", f"{res['eval/ep_disc_return']:.4f}", "", "")
    for j, c in enumerate(spec.cost_names):
        lim = float(limits[spec.cost_mask()[:, j], j].mean())
        mean, worst = res[f"eval/ep_cost/{c}"], res[f"eval/ep_cost_max/{c}"]
        table.add_row(f"episode cost {c} (mean over agents)", f"{mean:.4f}", f"{lim:.4g}", "yes" if mean <= lim else "NO")
        table.add_row(f"episode cost {c} (worst agent)", f"{worst:.4f}", f"{lim:.4g}", "yes" if worst <= lim else "NO")
    for key in sorted(k for k in res if k.startswith("eval/env/")):
        table.add_row(f"episode {key.split('/', 2)[2]} (environment metric)", f"{res[key]:.4f}", "", "")
    Console(width=max(100, Console().width)).print(table)
    return 0


VIDEO_FORMATS = (".gif", ".mp4", ".webm", ".avi", ".mkv")


def write_policy_video(algo, game, path: str | Path, *, steps: int = 300, seed: int = 0,
                       deterministic: bool = True, fps: float | None = None) -> Path:
    """Play one episode (at most ``steps`` steps) of ``algo`` on a one-copy ``game`` and save its frames.

    ``.gif`` is written with Pillow; other formats (``.mp4``, ...) with imageio (and its ffmpeg plugin).
    The frame rate defaults to the game's control rate (``1 / game.dt`` when it has one, else 20).
    """
    path = Path(path)
    if path.suffix.lower() not in VIDEO_FORMATS:
        raise SafenetError(f"--video {path}: unknown video format {path.suffix!r}; use one of {', '.join(VIDEO_FORMATS)}")
    if steps <= 0:
        raise SafenetError(f"--video-steps must be positive, got {steps}")
    obs, info = game.reset(seed=seed)
    frames = [game.render()]
    for _ in range(steps):
        actions, _ = algo.act(obs, info, deterministic=deterministic)
        obs, _, _, term, trunc, info = game.step(actions)
        if (term | trunc).any():
            break
        frames.append(game.render())
    game.close()
    fps = fps or (1.0 / float(game.dt) if getattr(game, "dt", None) else 20.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=max(20, round(1000 / fps)), loop=0)
    else:
        try:
            import imageio.v2 as imageio

            imageio.mimsave(path, frames, fps=fps)
        except Exception as exc:  # noqa: BLE001 - missing imageio or ffmpeg: say how to get a video anyway
            raise SafenetError(f"--video {path}: cannot write {path.suffix} ({type(exc).__name__}: {exc}); "
                               f"install imageio[ffmpeg] or use a .gif file") from exc
    return path


def cmd_plot(args) -> int:
    from .paths import PLOT_FORMATS, output_file
    from .plot import plot_runs
    from .sweep import is_sweep_dir, sweep_trial_dirs

    output_file(args.output, "-o", PLOT_FORMATS)
    dirs: list = []
    for d in args.run_dirs:
        if is_sweep_dir(d):
            trials = [t for t in sweep_trial_dirs(d) if (t / "metrics.csv").exists()]
            if not trials:
                raise SafenetError(f"{d}: no trial of this sweep has logged metrics yet")
            dirs += trials
        else:
            dirs.append(d)
    out = plot_runs(dirs, args.output, prefix="eval" if args.eval else "rollout")
    print(f"wrote {out}")
    return 0


@contextlib.contextmanager
def _one_line_plugin_warnings():
    """Plugin load warnings print as ``safenet: warning: ...``, one line each (no source location)."""
    import warnings

    from .plugins import PluginWarning

    original = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        if isinstance(category, type) and issubclass(category, PluginWarning):
            return f"safenet: warning: {message}\n"
        return original(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning
    try:
        yield
    finally:
        warnings.formatwarning = original


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"safenet {__version__}")
        return 0
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    handler = {"plugins": cmd_plugins, "train": cmd_train, "config": cmd_config, "eval": cmd_eval, "plot": cmd_plot,
               "doctor": cmd_doctor, "sweep": cmd_sweep}[args.command]
    try:
        with _one_line_plugin_warnings():
            return handler(args)
    except SafenetError as exc:
        print(f"safenet {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
