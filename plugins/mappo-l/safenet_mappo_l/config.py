"""Defaults of the PPO family (the ``algo.*`` config section), one dataclass per registered name.

All five algorithms share :class:`PPOConfig`; the constrained ones add the Lagrangian
(:class:`SafePPOConfig`), and ``dec-mappo-l`` adds the neighbourhood radius ``kappa``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from safenet.lagrange import LagrangeConfig

ACTIVATIONS = ("tanh", "relu")
REWARDS = ("team", "neighbourhood", "own")
POLICY_INPUTS = ("local", "neighbourhood")
CRITIC_INPUTS = ("obs", "state")
PENALTY_UNITS = ("std", "reward")
LAGRANGE_CAPS = ("fixed", "reward_rate")


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"algo.{key} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")


def _positive(key: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"algo.{key} must be {'>= 0' if allow_zero else 'positive'}, got {value}")


@dataclass
class PPOConfig:
    """Shared by ``ippo``, ``mappo``, ``happo`` (and the constrained variants below)."""

    gamma: float = 0.99             # discount γ (reward and cost critics)
    gae_lambda: float = 0.95        # GAE λ
    clip: float = 0.2               # PPO clip ε (Eq. 22)
    epochs: int = 5                 # passes over the batch per agent (per stage of the sequential scheme)
    minibatches: int = 4            # minibatches per pass
    actor_lr: float = 5e-4
    critic_lr: float = 5e-3         # reward and cost critics
    adam_eps: float = 1e-5
    entropy_coef: float = 0.01
    max_grad_norm: float = 10.0     # per-agent gradient-norm clip (0: none)
    hidden: List[int] = field(default_factory=lambda: [64, 64])
    activation: str = "relu"        # relu (as the MAPPO-L reference) | tanh; relu costs a fraction of tanh per unit
    init_log_std: float = -1.0      # continuous actions: initial log std (exp(-1) ≈ 0.37)
    obs_norm: bool = True           # running per-agent observation normalisation
    value_norm: bool = True         # critics predict normalised returns (running mean/std per agent and signal)
    huber_delta: float = 10.0       # Huber value loss δ on normalised returns (0: squared error)
    advantage_norm: bool = True     # standardise advantages per agent over the batch
    reward_scale: float = 1.0       # rewards are multiplied by this before learning (raw CACC rewards are large)
    # what each agent's reward critic learns: the team's mean reward, the mean over its critic's
    # neighbourhood (N_i^κ), or its own reward
    reward: str = "team"
    policy_input: str = "local"     # local: π^i(a^i | o^i); neighbourhood: π^i(a^i | o_{N_i}) (costs messages per step)
    critic_input: str = "obs"       # obs: the neighbourhood's observations; state: the env's global state (centralized only)
    rollout_steps: int = 0          # steps per copy per iteration; 0: whole episodes, at least 128 steps, at most 1000
    # train the critics in a background thread while the policies update and the next rollout is
    # collected (same math: neither uses the critics; their loss is then logged one iteration late)
    critic_overlap: bool = True
    # one actor and one critic (and cost critic) for all agents, on each agent's own inputs: parameters
    # O(1) in n, each network learns from n× the samples; all agents then update at once (one shared
    # network cannot be updated agent by agent, so the sequential scheme and its correction factor are off)
    share_parameters: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"algo.gamma must be in [0, 1), got {self.gamma}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"algo.gae_lambda must be in [0, 1], got {self.gae_lambda}")
        for key in ("clip", "actor_lr", "critic_lr", "adam_eps", "reward_scale"):
            _positive(key, getattr(self, key))
        for key in ("entropy_coef", "max_grad_norm", "huber_delta", "rollout_steps"):
            _positive(key, getattr(self, key), allow_zero=True)
        for key in ("epochs", "minibatches"):
            if getattr(self, key) < 1:
                raise ValueError(f"algo.{key} must be >= 1, got {getattr(self, key)}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"algo.hidden must be a non-empty list of positive sizes, got {list(self.hidden)}")
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("reward", self.reward, REWARDS)
        _choice("policy_input", self.policy_input, POLICY_INPUTS)
        _choice("critic_input", self.critic_input, CRITIC_INPUTS)


@dataclass
class SafePPOConfig(PPOConfig):
    """``mappo-l``: PPO-family config plus per-agent, per-constraint Lagrange multipliers."""

    lagrange: LagrangeConfig = field(default_factory=lambda: LagrangeConfig(lr=0.05))
    # combined advantage (Eq. 21 without the constant d): (A − Σ_j λ_j A_j) / (1 + Σ_j λ_j) when true,
    # A − Σ_j λ_j A_j when false
    penalty_normalize: bool = True
    # the units λ is in. "std": λ weighs each cost advantage standardised on its own against the
    # standardised reward advantage (the MAPPO-L reference). "reward": λ is reward per unit of cost:
    # A − Σ_j λ_j A_j is formed from the raw GAE advantages, then standardised (algo.advantage_norm).
    # With "reward", lagrange.max_value has a meaning: above the reward an agent earns per step for
    # staying alive, ending the episode early becomes the Lagrangian's optimum (docs/reports/headline).
    penalty_units: str = "std"
    # the cap on λ. "fixed": λ ≤ lagrange.max_value. "reward_rate" (needs penalty_units="reward"):
    # λ_i ≤ max(lagrange.max_value, r̄_i), r̄_i agent i's mean learning reward per step in the
    # rollout. For costs of at most 1 per step, ending the episode then never beats even staying
    # unsafe to its end, so the cap closes that loophole at every stage of learning, and it rises
    # as the policy earns more per step (docs/reports/headline_safe_ant_8x1.md §4).
    lagrange_cap: str = "fixed"

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("penalty_units", self.penalty_units, PENALTY_UNITS)
        _choice("lagrange_cap", self.lagrange_cap, LAGRANGE_CAPS)
        if self.lagrange_cap == "reward_rate" and self.penalty_units != "reward":
            raise ValueError("algo.lagrange_cap='reward_rate' compares λ with the reward per step, so it needs "
                             f"algo.penalty_units='reward' (got {self.penalty_units!r}); or set algo.lagrange_cap='fixed'")
        _choice("lagrange.method", self.lagrange.method, ("gradient", "pid"))
        _positive("lagrange.lr", self.lagrange.lr, allow_zero=True)
        _positive("lagrange.init", self.lagrange.init, allow_zero=True)
        _positive("lagrange.max_value", self.lagrange.max_value)


@dataclass
class DecSafePPOConfig(SafePPOConfig):
    """``dec-mappo-l``: critics, rewards and the correction factor restricted to N_i^κ."""

    kappa: int = 2                  # neighbourhood radius κ (κ >= the graph's diameter: MAPPO-L)
    reward: str = "neighbourhood"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.kappa, bool) or self.kappa < 0:
            raise ValueError(f"algo.kappa must be an integer >= 0, got {self.kappa}")
