"""DADC (decentralized actor, decentralized critic) with an approximate information state (safenet plugin)."""
__version__ = "0.1.0"
