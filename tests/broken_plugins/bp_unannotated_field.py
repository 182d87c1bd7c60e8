from dataclasses import dataclass

import safenet
from safenet import AlgorithmSpec


@dataclass
class UnannotatedConfig:
    gamma: float = 0.99
    lr = 0.03               # the mistake: no annotation, so no field


@safenet.hookimpl
def safenet_algorithms():
    return [AlgorithmSpec(name="unannotated", factory="bp_tabular:TabularGood", config=UnannotatedConfig)]
