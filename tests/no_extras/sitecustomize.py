"""Put this folder on PYTHONPATH to run apps-hpc as if the optional extras were not
installed: importing one of the modules in $APPS_HPC_HIDE (comma-separated) fails as a
missing module does. Used by tests/cli/test_errors.py."""

import os
import sys
from importlib.abc import MetaPathFinder

HIDDEN = {m for m in os.environ.get("APPS_HPC_HIDE", "").split(",") if m}


class _Hide(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Hide())
