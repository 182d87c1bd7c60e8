from dataclasses import dataclass

import safenet
from safenet import AlgorithmSpec


@dataclass
class WrongDefaultConfig:
    lr: int = 0.03          # the mistake: a float default for an int field


@safenet.hookimpl
def safenet_algorithms():
    return [AlgorithmSpec(name="wrong-default", factory="bp_tabular:TabularGood", config=WrongDefaultConfig)]
