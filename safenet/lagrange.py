"""Per-agent, per-constraint Lagrange multipliers for ``J_c^i(π) <= c^i``.

The Lagrangian of agent ``i`` is ``J_r^i - Σ_j λ_j^i (J_{c_j}^i - c_j^i)``; the policy ascends it and
the multipliers descend it, i.e. rise while the constraint is violated and fall (never below 0)
while it is satisfied. Two update rules:

* ``"gradient"``: projected gradient ascent ``λ ← clip(λ + lr · (Ĵ_c − c), 0, λ_max)``;
* ``"pid"``: a PID controller on the violation (Stooke, Achiam & Abbeel 2020), which damps the
  oscillation of plain gradient ascent: ``λ = clip(Kp·e + Ki·Σe + Kd·max(0, Δ Ĵ_c), 0, λ_max)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validation import param


@dataclass
class LagrangeConfig:
    enabled: bool = True
    method: str = param("gradient", choices=("gradient", "pid"))
    lr: float = param(0.05, ge=0)               # "gradient": step size of λ
    init: float = param(0.0, ge=0)              # λ at the start
    max_value: float = param(100.0, gt=0, finite=False)  # λ is clipped to [0, max_value] (inf: no cap)
    kp: float = param(0.1, ge=0)                # "pid" gains
    ki: float = param(0.01, ge=0)
    kd: float = param(0.0, ge=0)


class LagrangeMultipliers:
    """``λ[n, m]`` with a mask of the constraints that exist (padded agents keep λ = 0)."""

    def __init__(self, limits: np.ndarray, mask: np.ndarray | None = None, *, method: str = "gradient",
                 lr: float = 0.05, init: float = 0.0, max_value: float = 100.0,
                 kp: float = 0.1, ki: float = 0.01, kd: float = 0.0) -> None:
        if method not in ("gradient", "pid"):
            raise ValueError(f"lagrange method must be 'gradient' or 'pid', got {method!r}")
        self.limits = np.asarray(limits, dtype=np.float64)
        self.mask = np.isfinite(self.limits) if mask is None else np.asarray(mask, dtype=bool)
        self.method, self.lr, self.max_value = method, lr, max_value
        self.kp, self.ki, self.kd = kp, ki, kd
        self.value = np.where(self.mask, float(init), 0.0)
        self._integral = np.zeros_like(self.value)
        self._prev_cost = np.zeros_like(self.value)

    @classmethod
    def from_config(cls, limits: np.ndarray, mask: np.ndarray, cfg: LagrangeConfig) -> "LagrangeMultipliers":
        return cls(limits, mask, method=cfg.method, lr=cfg.lr, init=cfg.init, max_value=cfg.max_value,
                   kp=cfg.kp, ki=cfg.ki, kd=cfg.kd)

    def update(self, episode_cost: np.ndarray, max_value: np.ndarray | float | None = None) -> np.ndarray:
        """One step from the measured per-episode costs ``Ĵ_c[n, m]``; returns the new ``λ``.

        ``max_value`` (optional; a number, or ``[n]`` / ``[n, m]``) replaces the fixed cap for this step."""
        cost = np.asarray(episode_cost, dtype=np.float64)
        violation = np.where(self.mask, cost - np.where(self.mask, self.limits, 0.0), 0.0)
        if self.method == "gradient":
            new = self.value + self.lr * violation
        else:
            self._integral = np.maximum(0.0, self._integral + violation)
            deriv = np.maximum(0.0, cost - self._prev_cost)
            new = self.kp * violation + self.ki * self._integral + self.kd * deriv
            self._prev_cost = cost
        cap = self.max_value if max_value is None else np.asarray(max_value, dtype=np.float64)
        if np.ndim(cap) == 1:
            cap = cap[:, None]
        self.value = np.where(self.mask, np.clip(new, 0.0, cap), 0.0)
        return self.value

    def state_dict(self) -> dict:
        import torch

        return {"value": torch.as_tensor(self.value), "integral": torch.as_tensor(self._integral),
                "prev_cost": torch.as_tensor(self._prev_cost)}

    def load_state_dict(self, state: dict) -> None:
        self.value = np.asarray(state["value"], dtype=np.float64)
        self._integral = np.asarray(state["integral"], dtype=np.float64)
        self._prev_cost = np.asarray(state["prev_cost"], dtype=np.float64)
