"""MAPPO-L, DEC-MAPPO-L and the PPO-family baselines (IPPO, MAPPO, HAPPO) for safenet."""
__version__ = "0.1.0"
