"""`apps-hpc prepare --stats`: examples per difficulty, length percentiles, truncation.

Lengths are in tokens of the model's tokenizer (the chat template around prompt and
answer included) when `--tokenizer` is given and transformers is installed, else in
characters (and truncation is then not counted).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from apps_hpc.core.apps import DIFFICULTIES
from apps_hpc.core.prompts import EOT, chat_prompt

PERCENTILES = (50, 90, 95, 99, 100)


def per_difficulty(examples: list[dict]) -> dict[str, int]:
    counts = Counter(e["difficulty"] for e in examples)
    return {d: counts.get(d, 0) for d in DIFFICULTIES}


def _texts(examples: list[dict]) -> list[str]:
    return [f"{chat_prompt(e['instruction'])}\n{e['output']}\n{EOT}\n" for e in examples]


def _token_lengths(texts: list[str], tokenizer: str) -> list[int] | None:
    try:
        from transformers import AutoTokenizer
    except ImportError:
        return None
    tok = AutoTokenizer.from_pretrained(tokenizer)
    return [len(ids) for ids in tok(texts, add_special_tokens=True)["input_ids"]]


def dataset_stats(examples: list[dict], tokenizer: str | None, cutoff_len: int) -> dict[str, Any]:

    texts = _texts(examples)
    lengths = _token_lengths(texts, tokenizer) if tokenizer else None
    unit = "tokens" if lengths is not None else "characters"
    values = lengths if lengths is not None else [len(t) for t in texts]
    stats: dict[str, Any] = {
        "examples": len(examples),
        "problems": len({e["problem_id"] for e in examples}),
        "per_difficulty": per_difficulty(examples),
        "length_unit": unit,
        "length_percentiles": {
            f"p{q}": int(np.percentile(values, q)) if values else 0 for q in PERCENTILES
        },
    }
    if lengths is not None:
        stats["cutoff_len"] = cutoff_len
        stats["truncated_by_cutoff_len"] = sum(n > cutoff_len for n in lengths)
    return stats
