"""pytest setup of the template's tests.

``safenet.testing`` is safenet's pytest plugin for plugin authors: it adds the ``toy_game`` and
``safenet_run_dir`` fixtures, and its module is also a safenet plugin providing the ``toy_line``
env used below.
"""
import sys
from pathlib import Path

pytest_plugins = ["safenet.testing"]

# Let the tests run from a plain checkout too (an installed copy, e.g. `pip install -e .`, is the
# same source). Remove these lines if you always install before testing.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
