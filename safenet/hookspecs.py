"""The whole safenet plugin contract, as pluggy hook specifications.

A plugin is a module (or object) with functions named like the specs below, decorated with
:data:`safenet.hookimpl`, exposed through an entry point in the ``safenet`` group::

    # pyproject.toml of the distribution "safenet-myalgo"
    [project.entry-points.safenet]
    safenet_myalgo = "safenet_myalgo.plugin"

    # safenet_myalgo/plugin.py
    import safenet

    @safenet.hookimpl
    def safenet_algorithms():
        return [safenet.AlgorithmSpec(name="my-algo", factory="safenet_myalgo.algo:MyAlgo",
                                      config=MyAlgoConfig, summary="One line about it.")]

Rules that keep plugins working as safenet grows:

* An implementation may accept *fewer* arguments than its spec (pluggy passes only the names it
  asks for), so specs can gain arguments without breaking plugins.
* Registration hooks return small frozen dataclasses (:class:`~safenet.specs.AlgorithmSpec`,
  :class:`~safenet.specs.EnvSpec`). Factories are import strings ``"module:attr"`` imported only
  when the algorithm or env is selected, so listing plugins stays fast and a broken heavy import
  hurts only its own plugin.
* Lifecycle hooks are called on every plugin; their return values are ignored. An exception in a
  lifecycle hook stops the run with a one-line error naming the plugin and the hook (the run
  directory keeps its last checkpoint), so keep them cheap and safe.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from .runs import Run
    from .specs import AlgorithmSpec, EnvSpec

PROJECT = "safenet"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------

@hookspec
def safenet_algorithms() -> "list[AlgorithmSpec]":
    """Register training algorithms.

    Called once when the plugin manager is built. Return a list of
    :class:`~safenet.specs.AlgorithmSpec`: a name (lower case; ``-`` and ``_`` are equivalent
    when users type it), the import string of a :class:`~safenet.algorithm.Algorithm` subclass, a
    config dataclass whose field defaults are the algorithm's defaults (they become the
    ``algo.*`` section of the run config), a one-line summary, and the env tags the algorithm
    requires (e.g. ``{"finite"}`` for a tabular method), checked before anything runs.

    Example::

        @safenet.hookimpl
        def safenet_algorithms():
            return [AlgorithmSpec(name="sac", factory="safenet_scalable_ac.algorithm:ScalableActorCritic",
                                  config=SACConfig, summary="Scalable Actor Critic", requires={"finite"})]
    """


@hookspec
def safenet_environments() -> "list[EnvSpec]":
    """Register environments (games).

    Called once when the plugin manager is built. Return a list of
    :class:`~safenet.specs.EnvSpec`: a name (or a ``pattern`` such as
    ``grid_wireless_(?P<rows>\\d+)x(?P<cols>\\d+)`` whose named groups set env config keys), the
    import string of a factory ``make(cfg, num_envs, seed) -> BatchedGame``, a config dataclass
    with the env's defaults (the ``env.*`` section), optional suggested overrides for other
    sections (e.g. ``{"algo": {"gamma": 0.7}}``: applied to the keys the chosen algorithm has), the
    tags the env will have (so incompatible pairs are refused without building the env) and,
    optionally, the import string of a PettingZoo ``parallel_env(**cfg)`` factory.

    Example::

        @safenet.hookimpl
        def safenet_environments():
            return [EnvSpec(name="grid_wireless_3x3", factory="safenet_grid.wireless:make",
                            config=WirelessConfig, summary="3x3 wireless access grid", tags={"finite", "discrete"})]
    """


# --------------------------------------------------------------------------------------------
# Lifecycle (called on every plugin; return values ignored)
# --------------------------------------------------------------------------------------------

@hookspec
def safenet_run_start(run: "Run", config: Mapping[str, Any]) -> None:
    """A training run is about to start (or resume): the run directory and resolved config exist.

    ``run.dir`` is the run directory, ``run.resumed`` tells a resumed run from a fresh one. Use it
    to open your own logger (e.g. a wandb run) keyed on ``run.dir``.
    """


@hookspec
def safenet_iteration_end(run: "Run", iteration: int, env_steps: int, metrics: Mapping[str, float]) -> None:
    """One collect → update iteration finished; ``metrics`` is the row just written to metrics.csv.

    Metric keys follow ``section/name``: ``rollout/ep_return``, ``rollout/ep_cost/<cost>``,
    ``train/lagrange/<cost>``, ``train/loss_policy``, ``time/fps``, ``comm/floats_per_step``.
    """


@hookspec
def safenet_evaluation_end(run: "Run", env_steps: int, metrics: Mapping[str, float]) -> None:
    """A deterministic evaluation finished; ``metrics`` holds ``eval/ep_return`` and ``eval/ep_cost/<cost>``."""


@hookspec
def safenet_checkpoint_saved(run: "Run", path: str, env_steps: int) -> None:
    """A checkpoint was written atomically to ``path`` (already renamed into place)."""


@hookspec
def safenet_run_end(run: "Run", status: str, error: BaseException | None) -> None:
    """The run ended; ``status`` is ``"completed"``, ``"interrupted"`` or ``"failed"`` (then ``error`` is set)."""
