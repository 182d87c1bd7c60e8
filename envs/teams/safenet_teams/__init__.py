"""Decentralized team benchmarks with common information and known optima (safenet plugin).

* :mod:`safenet_teams.mabc` — multi-access broadcast (2 transmitters, control sharing);
* :mod:`safenet_teams.demand_response` — ON/OFF devices with mean-field sharing;
* :mod:`safenet_teams.solve` — exact optimal discounted values (``python -m safenet_teams.solve``).
"""
__version__ = "0.1.0"
