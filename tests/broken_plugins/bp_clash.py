"""Registers an algorithm name another plugin (bp_tabular) registers too."""
import safenet
from safenet import AlgorithmSpec

from bp_config import TabularConfig


@safenet.hookimpl
def safenet_algorithms():
    return [AlgorithmSpec(name="tabular_good", factory="bp_tabular:TabularGood", config=TabularConfig)]
