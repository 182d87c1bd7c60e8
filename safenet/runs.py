"""Run directories: resolved config, metadata, metrics (CSV + TensorBoard), atomic checkpoints.

Layout of ``runs/<date>-<algo>-<env>-s<seed>/``::

    config.yaml        the fully resolved config
    meta.json          algorithm, environment, argv, versions of safenet and every plugin, git sha
    metrics.csv        one row per iteration (env steps on the x axis)
    events.*           TensorBoard events (when tensorboard is installed and run.tensorboard)
    checkpoints/       ckpt_<env_steps>.pt + ``latest`` (written atomically: temp file, fsync, rename)
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from .errors import RunFileError, SafenetError

CONFIG_FILE, META_FILE, METRICS_FILE, CKPT_DIR, LATEST = "config.yaml", "meta.json", "metrics.csv", "checkpoints", "latest"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def is_run_dir(path: Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file() and (Path(path) / META_FILE).is_file()


def new_run_dir(parent: str, algo: str, env: str, seed: int, name: str = "") -> Path:
    base = Path(parent)
    stem = name or f"{time.strftime('%Y%m%d-%H%M%S')}-{algo}-{env}-s{seed}"
    path, k = base / stem, 2
    while path.exists():
        path, k = base / f"{stem}-{k}", k + 1
    path.mkdir(parents=True)
    return path


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except Exception:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def damaged_metrics(path: Path, why: str) -> RunFileError:
    return RunFileError(f"{path} is damaged ({why}); move it aside (e.g. to {path.name}.bak) and the run "
                        f"starts a new {path.name} from here on")


class MetricsCSV:
    """Appends rows to ``metrics.csv``; a new column rewrites the file once (atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.columns: list[str] = []
        if self.path.exists():
            try:
                with open(self.path, newline="") as fh:
                    self.columns = next(csv.reader(fh), [])
            except (OSError, UnicodeDecodeError, csv.Error) as exc:
                raise damaged_metrics(self.path, _first_line(exc)) from None
            if self.columns and "env_steps" not in self.columns:
                raise damaged_metrics(self.path, "its header has no env_steps column")

    def read(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        try:
            with open(self.path, newline="") as fh:
                return list(csv.DictReader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise damaged_metrics(self.path, _first_line(exc)) from None

    def _rewrite(self, rows: list[Mapping[str, Any]]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.path, buf.getvalue())

    def append(self, row: Mapping[str, Any]) -> None:
        new = [k for k in row if k not in self.columns]
        if new or not self.path.exists():
            rows = self.read()
            self.columns += new
            self._rewrite([*rows, row])
            return
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore").writerow(row)

    def truncate_after(self, env_steps: int) -> int:
        """Drop rows logged after ``env_steps`` (work lost with a kill) and a half-written last
        row; returns how many rows were dropped."""
        if not self.path.exists():
            return 0
        try:
            text = self.path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise damaged_metrics(self.path, _first_line(exc)) from None
        partial = 0
        if text and not text.endswith("\n"):              # killed in the middle of an append
            text, partial = text[: text.rfind("\n") + 1], 1
        rows = list(csv.DictReader(io.StringIO(text)))
        try:
            keep = [r for r in rows if int(float(r.get("env_steps", 0) or 0)) <= env_steps]
        except (TypeError, ValueError) as exc:
            raise damaged_metrics(self.path, f"an env_steps value is not a number: {_first_line(exc)}") from None
        if partial or len(keep) != len(rows):
            self._rewrite(keep)
        return len(rows) - len(keep) + partial


class TensorBoardSink:
    def __init__(self, path: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.writer = SummaryWriter(log_dir=str(path))

    def write(self, row: Mapping[str, Any], step: int) -> None:
        for k, v in row.items():
            if isinstance(v, (int, float)) and k not in ("env_steps", "iteration"):
                self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.writer.close()


class Run:
    """An open run directory (fresh or resumed)."""

    def __init__(self, path: Path, *, resumed: bool = False, tensorboard: bool = True) -> None:
        self.dir = Path(path)
        self.resumed = resumed
        self.metrics = MetricsCSV(self.dir / METRICS_FILE)
        (self.dir / CKPT_DIR).mkdir(exist_ok=True)
        self.tensorboard: TensorBoardSink | None = None
        if tensorboard:
            try:
                self.tensorboard = TensorBoardSink(self.dir)
            except ImportError:
                self.tensorboard = None

    # -- metadata -------------------------------------------------------------------------------
    def write_config(self, yaml_text: str) -> None:
        atomic_write_text(self.dir / CONFIG_FILE, yaml_text)

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        base = {"argv": sys.argv, "python": sys.version.split()[0], "git_sha": git_sha(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_text(self.dir / META_FILE, json.dumps({**base, **meta}, indent=2, default=str))

    def record_resume(self, env_steps: int, overrides: list[str]) -> None:
        """Append a resume with config overrides to ``meta.json``'s ``"resumes"`` list, so a run whose
        settings changed part-way says where and how (``config.yaml`` holds only the latest settings)."""
        meta = self.meta()
        meta.setdefault("resumes", []).append({"env_steps": int(env_steps), "overrides": list(overrides),
                                               "argv": list(sys.argv), "git_sha": git_sha(),
                                               "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
        atomic_write_text(self.dir / META_FILE, json.dumps(meta, indent=2, default=str))

    def meta(self) -> dict[str, Any]:
        """``meta.json``; a damaged one (or one without the algorithm and environment) is a
        :class:`RunFileError` naming the file."""
        path = self.dir / META_FILE
        try:
            meta = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunFileError(f"{path} is damaged ({_first_line(exc)}); it must record the run's algorithm and "
                               f"environment: restore it, or write {{\"algo\": NAME, \"env\": NAME}} into it") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("algo"), str) or not isinstance(meta.get("env"), str):
            raise RunFileError(f"{path} does not name the run's algorithm and environment (keys \"algo\" and "
                               f"\"env\"); restore it, or add them")
        return meta

    # -- metrics --------------------------------------------------------------------------------
    def log(self, row: Mapping[str, Any]) -> None:
        self.metrics.append(row)
        if self.tensorboard is not None:
            self.tensorboard.write(row, int(row.get("env_steps", 0)))

    # -- checkpoints ----------------------------------------------------------------------------
    @property
    def ckpt_dir(self) -> Path:
        return self.dir / CKPT_DIR

    def save_checkpoint(self, state: Mapping[str, Any], env_steps: int, keep: int = 3) -> Path:
        buf = io.BytesIO()
        torch.save(dict(state), buf)
        path = self.ckpt_dir / f"ckpt_{env_steps:012d}.pt"
        atomic_write_bytes(path, buf.getvalue())
        atomic_write_text(self.ckpt_dir / LATEST, path.name + "\n")
        if self.tensorboard is not None:
            self.tensorboard.writer.flush()
        ckpts = sorted(self.ckpt_dir.glob("ckpt_*.pt"))
        for old in ckpts[: max(0, len(ckpts) - max(1, keep))]:
            old.unlink(missing_ok=True)
        return path

    def latest_checkpoint(self) -> Path | None:
        pointer = self.ckpt_dir / LATEST
        if pointer.exists():
            try:
                name = pointer.read_text().strip()
            except (OSError, UnicodeDecodeError):
                name = ""                                  # a damaged pointer: fall back to the newest file
            p = self.ckpt_dir / name
            if name and "/" not in name and p.is_file():
                return p
        ckpts = sorted(self.ckpt_dir.glob("ckpt_*.pt"))
        return ckpts[-1] if ckpts else None

    def remove_temporary_files(self) -> list[Path]:
        """Delete half-written files a killed process left (``.<name>.<random>.tmp`` of the atomic
        writes) in the run directory and ``checkpoints/``; returns what was removed."""
        removed = []
        for folder in (self.dir, self.ckpt_dir):
            for tmp in folder.glob(".*.tmp"):
                try:
                    tmp.unlink()
                    removed.append(tmp)
                except OSError:
                    pass
        return removed

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _older_checkpoints(path: Path) -> list[Path]:
    return sorted(p for p in Path(path).parent.glob("ckpt_*.pt") if p.name < Path(path).name)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's contents; a missing, truncated or corrupt file is a :class:`RunFileError` that
    names it and the older checkpoint to fall back on."""
    path = Path(path)
    if not path.is_file():
        raise RunFileError(f"checkpoint {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle errors, ...
        older = _older_checkpoints(path)
        what = (f"delete it (and {path.parent / LATEST}) to go back to {older[-1].name}" if older else
                "delete the run's checkpoints/ folder to start it again")
        raise RunFileError(f"checkpoint {path} is damaged or not a safenet checkpoint ({_first_line(exc)}); "
                           f"{what}") from None
    if not isinstance(state, dict):
        raise RunFileError(f"checkpoint {path} is not a safenet checkpoint (it holds a {type(state).__name__})")
    return state
