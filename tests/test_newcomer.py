"""Small things a newcomer meets: presets and `safenet doctor` from any directory."""
from __future__ import annotations

from pathlib import Path

from safenet.config import PACKAGE_ROOT, find_preset
from safenet.doctor import preset_problems


def test_presets_are_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                      # no configs/ here or above
    shipped = sorted(p.stem for p in (PACKAGE_ROOT / "configs").glob("*.yaml"))
    assert shipped
    assert find_preset(shipped[0]) == PACKAGE_ROOT / "configs" / f"{shipped[0]}.yaml"


def test_doctor_reads_the_shipped_presets_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    count, problems = preset_problems()
    assert count == len(list((PACKAGE_ROOT / "configs").glob("*.yaml"))) and not problems
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text("trainer: {n_envs: [1\n")
    count2, problems = preset_problems()
    assert count2 == count + 1 and len(problems) == 1 and "mine" in problems[0]
