"""Put first on PYTHONPATH of a multi-process CPU training (`launch_env`), so it runs at
the start of every process that `llamafactory-cli train` and its torchrun start.

In a multi-process CPU run accelerate sets the device to `torch.device("cpu", 0)`, and
transformers loads the optimizer of a checkpoint with `map_location=args.device` when
the world is larger than one; torch's CPU deserializer accepts only the tag `cpu`, so a
resume failed with "don't know how to restore data location ... (tagged with cpu:0)".
This registers, through torch's public `register_package`, a deserializer that takes
`cpu:<N>` as the CPU (the storage as it is). Then it runs the `sitecustomize` that this
one hides, if there is one further on sys.path.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from typing import Any

PRIORITY = 95  # after torch's own (cpu 10, cuda 20, mps 21, meta 22, ...): they run first


def restore_cpu_n(storage: Any, location: str) -> Any:
    """`cpu:<N>`: the one CPU, so the storage as loaded; anything else: not ours."""
    device, _, index = location.partition(":")
    return storage if device == "cpu" and index.isdigit() else None


def _register() -> None:
    try:
        import torch.serialization
    except ImportError:  # not a torch process's Python: nothing to restore
        return
    torch.serialization.register_package(PRIORITY, lambda _storage: None, restore_cpu_n)


def _run_the_next_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


_register()
_run_the_next_sitecustomize()
