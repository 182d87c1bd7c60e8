import safenet
from safenet import AlgorithmSpec

from bp_config import TabularConfig


@safenet.hookimpl
def safenet_algorithms():
    return [AlgorithmSpec(name="no-update", factory="bp_missing_abstract_algo:NoUpdate", config=TabularConfig)]
