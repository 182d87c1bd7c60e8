import safenet
from safenet import AlgorithmSpec

from bp_config import TabularConfig


@safenet.hookimpl
def safenet_algorithms():
    return [AlgorithmSpec(name="Bad Name!", factory="bp_tabular:TabularGood", config=TabularConfig)]
