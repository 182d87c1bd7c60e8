from safenet import AlgorithmSpec

from bp_config import TabularConfig


def safenet_algorithms():   # the mistake: no @safenet.hookimpl, so pluggy never calls it
    return [AlgorithmSpec(name="undecorated", factory="bp_tabular:TabularGood", config=TabularConfig)]
