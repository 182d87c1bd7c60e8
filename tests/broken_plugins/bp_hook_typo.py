import safenet
from safenet import AlgorithmSpec

from bp_config import TabularConfig


@safenet.hookimpl
def safenet_algorithm():    # the mistake: the hook is safenet_algorithms
    return [AlgorithmSpec(name="typo-algo", factory="bp_tabular:TabularGood", config=TabularConfig)]
