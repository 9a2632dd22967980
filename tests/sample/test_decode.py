"""The transformers engine's batched decoder against transformers' own `generate`, and
its promise: a problem's completions do not depend on the problems batched with it."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the decoder needs the train extra")
pytest.importorskip("transformers", reason="the decoder needs the train extra")

from apps_hpc.core.prompts import chat_prompt, user_prompt  # noqa: E402
from apps_hpc.sample.decode import DecodeSettings, decode, row_seed, top_p_probs  # noqa: E402

PROMPTS = [
    chat_prompt(user_prompt("Print the sum of two integers.", "", None)),
    chat_prompt(user_prompt("Reverse a string. " * 12, "class Solution:\n    pass", "rev")),
]


def _model_and_ids(tiny_model_dir: Path) -> tuple[object, object, list[list[int]]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    model.config.use_cache = False  # as LlamaFactory saves a fine-tuned model's config
    return tok, model, [tok(p)["input_ids"] for p in PROMPTS]


def test_top_p_keeps_the_smallest_nucleus() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.97, 0.01, 0.01, 0.01]]))
    probs = top_p_probs(logits, 1.0, 0.8)
    assert torch.allclose(probs[0], torch.tensor([0.625, 0.375, 0.0, 0.0]))
    assert torch.allclose(probs[1], torch.tensor([1.0, 0.0, 0.0, 0.0]))  # the best stays
    assert torch.allclose(top_p_probs(logits, 1.0, 1.0), torch.exp(logits))


def test_row_seeds_differ_per_completion_and_problem() -> None:
    seeds = {row_seed(s, j) for s in range(50) for j in range(20)}
    assert len(seeds) == 1000


def test_greedy_equals_transformers_generate_alone_and_batched(tiny_model_dir: Path) -> None:
    tok, model, ids = _model_and_ids(tiny_model_dir)
    s = DecodeSettings(1, 24, 0.0, 1.0, eot=-1, pad=tok.pad_token_id)  # type: ignore[attr-defined]
    alone = [decode(model, [p], [0], s)[0][0] for p in ids]
    batched = [rows[0] for rows in decode(model, ids, [0, 1], s)]  # the short one left-padded
    with torch.no_grad():
        reference = [
            model.generate(  # type: ignore[attr-defined]
                torch.tensor([p]), max_new_tokens=24, do_sample=False, use_cache=True
            )[0, len(p) :].tolist()
            for p in ids
        ]
    assert alone == batched == reference


def test_sampled_completions_do_not_depend_on_the_batch(tiny_model_dir: Path) -> None:
    tok, model, ids = _model_and_ids(tiny_model_dir)
    s = DecodeSettings(3, 16, 0.6, 0.95, eot=-1, pad=tok.pad_token_id)  # type: ignore[attr-defined]
    alone = decode(model, [ids[0]], [7], s)[0]
    together = decode(model, [ids[1], ids[0]], [8, 7], s)[1]
    assert alone == together and len(alone) == 3 and all(len(r) == 16 for r in alone)
    assert len({tuple(r) for r in alone}) == 3  # each completion draws its own tokens
    assert decode(model, [ids[0]], [9], s)[0] != alone  # another problem seed, other draws


def test_prompts_and_seeds_must_pair_up(tiny_model_dir: Path) -> None:
    _, model, ids = _model_and_ids(tiny_model_dir)
    with pytest.raises(ValueError, match="2 prompts and 1 seeds"):
        decode(model, ids, [0], DecodeSettings(1, 4, 0.6, 0.95, eot=-1, pad=0))
