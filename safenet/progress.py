"""Live training progress: a rich bar on a terminal, periodic plain lines otherwise (CI logs)."""
from __future__ import annotations

import sys
import time
from typing import Mapping


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.3g}"  # NaN → "-"


def _steps(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e4 else str(n)


def describe(row: Mapping[str, float], cost_names: list[str]) -> str:
    parts = [f"reward {_fmt(row.get('rollout/ep_return', float('nan')))}"]
    for c in cost_names:
        parts.append(f"{c} {_fmt(row.get(f'rollout/ep_cost/{c}', float('nan')))}"
                     f"/{_fmt(row.get(f'limit/{c}', float('nan')))}")
    parts.append(f"{row.get('time/fps', 0):.0f} steps/s")
    return "  ".join(parts)


class Progress:
    def __init__(self, total: int, start: int, mode: str = "auto", interval_s: float = 10.0, title: str = "") -> None:
        self.total, self.start_steps, self.interval = total, start, interval_s
        if mode == "auto":
            mode = "bar" if sys.stdout.isatty() else "plain"
        self.mode = mode
        self.t0 = time.time()
        self._last_print = 0.0
        self._bar = None
        if mode == "bar":
            from rich.progress import BarColumn, Progress as RichProgress, TaskProgressColumn, TextColumn, TimeRemainingColumn

            print(title, flush=True)
            self._bar = RichProgress(BarColumn(bar_width=20), TaskProgressColumn(), TextColumn("{task.fields[info]}"),
                                     TextColumn("ETA"), TimeRemainingColumn(), transient=False)
            self._task = self._bar.add_task("train", total=total, completed=start, info="")
            self._bar.start()
        elif mode == "plain":
            print(f"{title}: training to {total} env steps", flush=True)

    def eta(self, steps: int) -> float:
        done = steps - self.start_steps
        el = time.time() - self.t0
        return max(0.0, (self.total - steps) * el / done) if done > 0 else float("nan")

    def update(self, steps: int, text: str, force: bool = False) -> None:
        if self.mode == "bar" and self._bar is not None:
            self._bar.update(self._task, completed=min(steps, self.total), info=f"{_steps(steps)} steps  {text}")
        elif self.mode == "plain":
            now = time.time()
            if force or now - self._last_print >= self.interval:
                self._last_print = now
                eta = self.eta(steps)
                eta_s = "-" if eta != eta else f"{eta:.0f}s"
                print(f"[{steps}/{self.total} env steps, {100 * steps / self.total:.0f}%] {text}  ETA {eta_s}", flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
