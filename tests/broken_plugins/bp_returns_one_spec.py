import safenet
from safenet import EnvSpec
from safenet.testing import ToyConfig


@safenet.hookimpl
def safenet_environments():
    return EnvSpec(name="lonely", factory="safenet.testing:make_toy", config=ToyConfig)
