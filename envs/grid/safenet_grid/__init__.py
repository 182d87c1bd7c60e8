"""Grid-topology networked games for safenet: the wireless access grid (``grid_wireless_<R>x<C>``)."""
from __future__ import annotations

from .wireless import WirelessConfig, WirelessGrid, make, parallel_env

__version__ = "0.1.0"

__all__ = ["WirelessConfig", "WirelessGrid", "make", "parallel_env", "__version__"]
