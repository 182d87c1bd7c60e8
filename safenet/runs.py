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

from .errors import SafenetError

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


class MetricsCSV:
    """Appends rows to ``metrics.csv``; a new column rewrites the file once (atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.columns: list[str] = []
        if self.path.exists():
            with open(self.path, newline="") as fh:
                reader = csv.reader(fh)
                self.columns = next(reader, [])

    def read(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as fh:
            return list(csv.DictReader(fh))

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
        text = self.path.read_text()
        partial = 0
        if text and not text.endswith("\n"):              # killed in the middle of an append
            text, partial = text[: text.rfind("\n") + 1], 1
        rows = list(csv.DictReader(io.StringIO(text)))
        keep = [r for r in rows if int(float(r.get("env_steps", 0) or 0)) <= env_steps]
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

    def meta(self) -> dict[str, Any]:
        return json.loads((self.dir / META_FILE).read_text())

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
            p = self.ckpt_dir / pointer.read_text().strip()
            if p.exists():
                return p
        ckpts = sorted(self.ckpt_dir.glob("ckpt_*.pt"))
        return ckpts[-1] if ckpts else None

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SafenetError(f"cannot read checkpoint {path}: {exc}") from None
