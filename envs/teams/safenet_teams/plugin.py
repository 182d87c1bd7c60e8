"""Registers the team games with safenet (entry point ``safenet_teams`` in group ``safenet``)."""
from __future__ import annotations

import safenet
from safenet.specs import EnvSpec


@safenet.hookimpl
def safenet_environments() -> list[EnvSpec]:
    from .demand_response import DemandResponseConfig
    from .mabc import MabcConfig

    return [
        EnvSpec(name="multi_access_broadcast", factory="safenet_teams.mabc:make", config=MabcConfig,
                summary="2 transmitters, Markov channel, control sharing (DADC appendix D.1); "
                        "exact optimum: python -m safenet_teams.solve multi_access_broadcast",
                tags=frozenset({"finite", "discrete", "global_state", "common_obs"}),
                parallel_env="safenet_teams.mabc:parallel_env"),
        EnvSpec(name="demand_response", factory="safenet_teams.demand_response:make", config=DemandResponseConfig,
                summary="n ON/OFF devices with mean-field sharing (DADC appendix D.2); "
                        "exact optimum: python -m safenet_teams.solve demand_response",
                pattern=r"demand_response_(?P<n_devices>\d+)",
                tags=frozenset({"finite", "discrete", "global_state", "common_obs", "exchangeable"}),
                parallel_env="safenet_teams.demand_response:parallel_env"),
    ]
