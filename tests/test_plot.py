"""Curve labels of ``safenet plot``: runs are grouped by algorithm, env and the config values that differ."""
from __future__ import annotations

import json
from pathlib import Path

from safenet.plot import group_labels


def _run(root: Path, name: str, algo: str, config: str) -> Path:
    d = root / name
    d.mkdir()
    (d / "meta.json").write_text(json.dumps({"algo": algo, "env": "toy_line"}))
    (d / "config.yaml").write_text(config)
    return d


def test_labels_name_the_algorithm_and_only_values_all_runs_have(tmp_path):
    safe = _run(tmp_path, "a", "mappo-l", "seed: 0\nalgo:\n  gamma: 0.99\n  lagrange:\n    lr: 0.05\n    kp: 0.1\n")
    plain = _run(tmp_path, "b", "ippo", "seed: 1\nalgo:\n  gamma: 0.99\n")
    labels = group_labels([safe, plain])
    # the Lagrangian keys exist only for mappo-l: the algorithm's name already tells them apart
    assert labels == {safe: "mappo-l on toy_line", plain: "ippo on toy_line"}


def test_labels_show_a_value_that_differs_between_runs_of_one_algorithm(tmp_path):
    k1 = _run(tmp_path, "a", "dec-mappo-l", "seed: 0\nalgo:\n  kappa: 1\n  gamma: 0.99\n")
    k2 = _run(tmp_path, "b", "dec-mappo-l", "seed: 0\nalgo:\n  kappa: 2\n  gamma: 0.99\n")
    same = _run(tmp_path, "c", "dec-mappo-l", "seed: 1\nalgo:\n  kappa: 2\n  gamma: 0.99\n")
    labels = group_labels([k1, k2, same])
    assert labels[k1] == "dec-mappo-l on toy_line (kappa=1)"
    assert labels[k2] == labels[same] == "dec-mappo-l on toy_line (kappa=2)"   # seeds are grouped


def test_panels_add_the_games_episode_metrics():
    import numpy as np

    from safenet.plot import panel_names

    nan = np.array([np.nan, np.nan])
    a = {"rollout/ep_return": np.ones(2), "rollout/ep_cost/spill": np.ones(2), "rollout/env/queue": np.ones(2),
         "eval/env/delay": np.ones(2), "rollout/env/never": nan}
    b = {"rollout/ep_return": np.ones(2), "rollout/env/delay": np.array([np.nan, 3.0])}
    assert panel_names([a, b], "rollout") == ["return", "spill", "env/delay", "env/queue"]
    assert panel_names([a], "eval") == ["return", "env/delay"]
