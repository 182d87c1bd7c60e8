"""DMPO, DPPO and CPPO for safenet (distribution ``safenet-dmpo``).

* ``dppo`` — decentralized PPO with extended value functions ``V_i(s_{N_i^κ})`` and advantages
  averaged over κ-hop neighbours (:mod:`safenet_dmpo.learner`);
* ``dmpo`` — the same learner trained mostly on branched rollouts of per-agent localized models
  (:mod:`safenet_dmpo.model`, :mod:`safenet_dmpo.dmpo`);
* ``cppo`` — the centralized-critic baseline: ``V_i(s)`` on the global state, own advantage only.
"""
from .config import CPPOConfig, DMPOConfig, DPPOConfig

__all__ = ["CPPOConfig", "DMPOConfig", "DPPOConfig"]
__version__ = "0.1.0"
