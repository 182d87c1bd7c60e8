"""The config dataclass the broken plugins share (a light module: no torch)."""
from dataclasses import dataclass


@dataclass
class TabularConfig:
    lr: float = 0.5
