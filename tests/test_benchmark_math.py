"""The numbers the benchmark reports compute: sample-efficiency levels of ``benchmarks/dmpo_cacc.py``."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("dmpo_cacc", ROOT / "benchmarks" / "dmpo_cacc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_first_reach_needs_the_level_held(report):
    grid = np.arange(10.0)
    y = np.array([0, 5, 0, 0, 3, 3, 3, 3, 3, 3], dtype=float)
    # the blip at 1 is not held for 3 points; from 4 on the curve stays at 3
    assert report.first_reach(grid, y, 3.0, hold=3) == 4.0
    assert report.first_reach(grid, y, 5.0, hold=3) == np.inf
    # a level held to the end of the run counts even if fewer than `hold` points remain
    y2 = np.array([0, 0, 0, 0, 0, 0, 0, 0, 4, 4], dtype=float)
    assert report.first_reach(grid, y2, 4.0, hold=5) == 8.0
    # nan (before the first logged point) never counts as reached
    assert report.first_reach(grid, np.full(10, np.nan), -1e9) == np.inf


def _runs(slope: float, start: float = -100.0, seeds: int = 2) -> list[dict[str, np.ndarray]]:
    steps = np.arange(1, 101) * 10.0
    return [{"env_steps": steps, "r": start + slope * np.arange(100.0), "_seed": np.array([s])}
            for s in range(seeds)]


def test_efficiency_ratio_of_two_linear_learners(report):
    # dmpo climbs twice as fast as dppo and both stop at the same final level: dmpo needs half the steps
    fast = _runs(2.0)
    slow = _runs(1.0)
    for r in fast:
        r["r"] = np.minimum(r["r"], 0.0)
    for r in slow:
        r["r"] = np.minimum(r["r"], 0.0)
    grid = np.linspace(0, 1000, 201)
    lines = "\n".join(report.efficiency({"dmpo": fast, "dppo": slow}, "r", grid, window=1))
    assert "dmpo needs 0.5" in lines
    assert "| 50% | -50 |" in lines


def test_efficiency_says_when_the_baseline_does_not_improve(report):
    grid = np.linspace(0, 1000, 201)
    lines = "\n".join(report.efficiency({"dmpo": _runs(1.0), "dppo": _runs(-0.5)}, "r", grid, window=1))
    assert "is not above the start" in lines
    assert "not within" in lines
