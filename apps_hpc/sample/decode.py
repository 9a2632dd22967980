"""Batched sampling for the `transformers` engine: several problems' prompts go through
the model together (left-padded, one KV cache), and every completion draws its tokens
from its own random generator, seeded from its problem's seed and its index. A
problem's completions therefore do not depend on which problems share its batch, on the
batch size, or on a resumed run's order (up to float rounding of padded batches).

Needs torch (the `train` extra); imported only by the transformers engine.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

_MIX = 1_000_003  # completion j of a problem with seed s draws from generator s * _MIX + j


@dataclass(frozen=True)
class DecodeSettings:
    n: int
    max_tokens: int
    temperature: float
    top_p: float
    eot: int
    pad: int


def row_seed(seed: int, index: int) -> int:
    """The generator seed of completion `index` of a problem seeded `seed`."""
    return (seed * _MIX + index) % (2**63)


def top_p_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Rows of probabilities after temperature and nucleus (top-p) filtering: the
    smallest set of most likely tokens whose mass reaches top_p, renormalised."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p >= 1.0:
        return probs
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # mass of the better tokens
    sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)


def next_tokens(
    logits: torch.Tensor, s: DecodeSettings, generators: list[torch.Generator]
) -> torch.Tensor:
    """One token per row: greedy at temperature 0, else drawn with the row's generator."""
    if s.temperature <= 0:
        return logits.argmax(dim=-1)
    probs = top_p_probs(logits, s.temperature, s.top_p)
    picks = [torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)]
    return torch.cat(picks)


def _forward(model: Any, ids: torch.Tensor, mask: torch.Tensor, past: Any) -> Any:
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1] :]
    extra = {}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        extra["logits_to_keep"] = 1  # the prompt's other positions' logits are not needed
    return model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=past,
        use_cache=True,  # a fine-tuned model's config may say false (LlamaFactory saves it so)
        **extra,
    )


def decode(
    model: Any, prompt_ids: list[list[int]], seeds: list[int], s: DecodeSettings
) -> list[list[list[int]]]:
    """`s.n` completions per prompt (token ids, the EOT included when produced), all
    prompts in one left-padded batch."""
    if len(seeds) != len(prompt_ids) or not prompt_ids:
        raise ValueError(f"{len(prompt_ids)} prompts and {len(seeds)} seeds")
    width = max(len(p) for p in prompt_ids)
    device = next(model.parameters()).device
    rows = [p for p in prompt_ids for _ in range(s.n)]
    ids = torch.tensor([[s.pad] * (width - len(p)) + p for p in rows], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in rows], device=device)
    generators = [
        torch.Generator(device=device).manual_seed(row_seed(seed, j))
        for seed in seeds
        for j in range(s.n)
    ]
    out: list[list[int]] = [[] for _ in rows]
    finished = torch.zeros(len(rows), dtype=torch.bool, device=device)
    past = None
    with torch.no_grad():
        for _ in range(s.max_tokens):
            result = _forward(model, ids, mask, past)
            past = result.past_key_values
            token = next_tokens(result.logits[:, -1, :], s, generators)
            for i in (~finished).nonzero().flatten().tolist():
                out[i].append(int(token[i]))
            finished |= token == s.eot
            if bool(finished.all()):
                break
            ids = token.masked_fill(finished, s.pad).unsqueeze(1)
            mask = torch.cat([mask, torch.ones_like(ids)], dim=1)
    return [out[i * s.n : (i + 1) * s.n] for i in range(len(prompt_ids))]
