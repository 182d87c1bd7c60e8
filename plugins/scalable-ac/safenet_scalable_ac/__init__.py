"""Scalable Actor Critic for safenet (algorithm name ``sac``)."""
__version__ = "0.1.0"
