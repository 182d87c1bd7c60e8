"""Registers ``dmpo``, ``dppo`` and ``cppo`` with safenet (entry point ``safenet_dmpo``)."""
from __future__ import annotations

import safenet
from safenet import AlgorithmSpec

from .config import CPPOConfig, DMPOConfig, DPPOConfig

#: PPO optimises the sampled policy, and on CACC the learned controller is a mix of gain settings:
#: argmax actions keep one setting and can leave a gap open (docs/reports/dmpo_cacc.md shows both),
#: so evaluation samples, as training does. `trainer.eval_deterministic=true` evaluates the argmax.
OVERRIDES = {"trainer": {"eval_deterministic": False}}
#: networks, optimizer state, model fits, branched rollouts and PPO updates run on trainer.device
DEVICES = ("cpu", "cuda")


@safenet.hookimpl
def safenet_algorithms() -> list[AlgorithmSpec]:
    return [
        AlgorithmSpec(
            name="dmpo", factory="safenet_dmpo.dmpo:DMPO", config=DMPOConfig,
            summary="Model-based decentralized policy optimization (DMPO): localized models, branched "
                    "rollouts, κ-hop extended value functions, PPO", overrides=OVERRIDES, devices=DEVICES),
        AlgorithmSpec(
            name="dppo", factory="safenet_dmpo.learner:DecentralizedPPO", config=DPPOConfig,
            summary="Decentralized PPO with κ-hop extended value functions and neighbourhood-averaged "
                    "advantages (DMPO without a model)", overrides=OVERRIDES, devices=DEVICES),
        AlgorithmSpec(
            name="cppo", factory="safenet_dmpo.learner:CentralizedPPO", config=CPPOConfig,
            summary="PPO with per-agent critics on the global state and own advantages (centralized "
                    "critic baseline of DMPO)", overrides=OVERRIDES, devices=DEVICES),
    ]
