"""Output paths checked before anything runs: a folder that is a file, a place that cannot be written,
an output file with a format nobody can write. Errors are one line naming the option and the path."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .errors import SafenetError

#: formats ``safenet plot -o`` writes (matplotlib's Agg backend)
PLOT_FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp", ".svgz")


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def writable_dir(path: str | Path, what: str) -> Path:
    """``path`` as a folder that exists or can be made (made here); else a one-line error."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise SafenetError(f"{what}={path}: is a file, not a folder; give a folder path")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise SafenetError(f"{what}={path}: {base} is a file, not a folder; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SafenetError(f"{what}={path}: cannot create this folder ({exc.strerror or exc}); "
                           f"give a folder you can write to") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise SafenetError(f"{what}={path}: this folder is not writable; give a folder you can write to")
    return path


def output_file(path: str | Path, what: str, formats: Sequence[str], kind: str = "file") -> Path:
    """``path`` as a file to be written: a known format, not a folder, its folder writable."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise SafenetError(f"{what} {path}: is a folder; give a file name such as {path / ('out' + formats[0])}")
    if path.suffix.lower() not in formats:
        shown = repr(path.suffix) if path.suffix else "(none)"
        raise SafenetError(f"{what} {path}: unknown {kind} format {shown}; use one of {', '.join(formats)}")
    writable_dir(path.parent if str(path.parent) else Path("."), f"{what} folder")
    return path
