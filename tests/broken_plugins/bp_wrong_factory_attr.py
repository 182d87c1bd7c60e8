import safenet
from safenet import AlgorithmSpec

from bp_config import TabularConfig


@safenet.hookimpl
def safenet_algorithms():
    return [AlgorithmSpec(name="misnamed", factory="bp_lazy_algo:LazyAlgorithm", config=TabularConfig)]
