"""The evaluation stage: run every sampled program against its problem's APPS tests.

`evaluate(cfg)` is the entry point the CLI and the launchers call. Programs run in
sandboxed children of warm workers (`pool.py`, `worker.py`, `sandbox.py`), with the
reference harness's semantics (`semantics.py`, `harness.py`). Imports are lazy so that
`python -m apps_hpc.evaluate.worker` starts without loading the stage.
"""

from typing import Any

__all__ = ["EvalConfig", "evaluate"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from apps_hpc.evaluate import stage

        return getattr(stage, name)
    raise AttributeError(name)
