"""The sampling stage: n completions per prompt, data parallel over shards, resumable.

`sample(cfg)` is the entry point; engines (`vllm`, `transformers`) are imported lazily.
"""

from typing import Any

__all__ = ["SampleConfig", "merge_samples", "sample"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from apps_hpc.sample import stage

        return getattr(stage, name)
    raise AttributeError(name)
