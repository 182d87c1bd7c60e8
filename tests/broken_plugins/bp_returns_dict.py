import safenet
from safenet import AlgorithmSpec

from bp_config import TabularConfig


@safenet.hookimpl
def safenet_algorithms():
    return {"dict-algo": AlgorithmSpec(name="dict-algo", factory="bp_tabular:TabularGood", config=TabularConfig)}
