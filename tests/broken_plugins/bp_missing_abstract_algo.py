import numpy as np

from safenet.algorithm import Algorithm


class NoUpdate(Algorithm):
    """The mistake: `update` is forgotten."""

    def act(self, obs, info, deterministic=False):
        return np.zeros(obs.shape[:2], dtype=np.int64), {}
