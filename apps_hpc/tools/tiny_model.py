"""`apps-hpc tiny-model --out DIR`: a tiny random Llama and a byte-level BPE tokenizer,
built locally (no hub access), shaped like deepseek-coder-instruct: BOS
`<｜begin▁of▁sentence｜>`, EOS `<|EOT|>`, its chat template. Used by the tests and the
laptop demo so that every stage runs for real on a CPU in seconds.

Needs the `train` extra (torch, transformers, tokenizers). Build it with the same
transformers version that will read it.
"""

from __future__ import annotations

import json
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from apps_hpc.core.prompts import BOS, EOT, SYSTEM

PAD = "<｜end▁of▁sentence｜>"
SPECIAL = [BOS, PAD, EOT]

# deepseek-coder-instruct's chat template, in jinja (the tokenizer's own template).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}"
    "{% set loop_messages = messages[1:] %}"
    "{% else %}{{ '" + SYSTEM.replace("\n", "\\n").replace("'", "\\'") + "' }}"
    "{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + "
    "'\\n### Response:' }}"
    "{% else %}{{ '\\n' + message['content'] + '\\n<|EOT|>\\n' }}{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class TinySpec:
    vocab_size: int = 2048
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    intermediate_size: int = 128
    max_positions: int = 4096
    seed: int = 0
    corpus_files: int = 200  # stdlib .py files the tokenizer learns from


# The laptop demo's model: twice as wide as the tests' (0.9M against 0.35M parameters).
# In the demo's 500 CPU steps it learns the train programs well enough that rewordings of
# a train task (the bundled test variants) get its program; the 64-wide one mostly does not.
DEMO = TinySpec(hidden_size=128, intermediate_size=256)


def built_spec_matches(out: Path, spec: TinySpec) -> bool:
    """Is `out` a tiny model already built with this spec's sizes?"""
    try:
        config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    wanted = {
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
    }
    return all(config.get(key) == value for key, value in wanted.items())


def _corpus(limit: int) -> list[str]:
    """Deterministic local text: the first `limit` stdlib modules, sorted by path."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if p.is_file())[:limit]
    return [p.read_text(encoding="utf-8", errors="replace") for p in files]


def build_tokenizer(spec: TinySpec, out: Path) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(spec.corpus_files), trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(  # BOS first, as deepseek-coder's
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        model_input_names=["input_ids", "attention_mask"],
        chat_template=CHAT_TEMPLATE,
        add_bos_token=True,
    )
    fast.save_pretrained(out)
    return fast


def build_model(spec: TinySpec, tokenizer: object, out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(spec.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),  # type: ignore[arg-type]
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,  # type: ignore[attr-defined]
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id  # type: ignore[attr-defined]
    model.save_pretrained(out, safe_serialization=True)


def tiny_model(out: Path, spec: TinySpec | None = None) -> Path:
    """Build the tokenizer and the model into `out`; return `out`."""
    spec = spec or TinySpec()
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(spec, out)
    build_model(spec, tokenizer, out)
    return out
