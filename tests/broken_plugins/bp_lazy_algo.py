"""An algorithm module that only a selected run imports (no test imports it)."""
from bp_tabular import TabularGood as LazyAlgo  # noqa: F401
