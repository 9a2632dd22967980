"""What a run will cost (pure arithmetic, no I/O): parameters, memory per GPU, time.

Every figure here is a formula over stated inputs; `launch/planner.py` gathers the
inputs (the model's config.json, the prepared dataset, the profile, earlier runs).

- Parameters of a Llama-shaped decoder (deepseek-coder is one): embeddings V*h, per layer
  the attention projections 2*h*h + 2*h*kv (kv = h * kv_heads / heads), the gated MLP
  3*h*I and two RMSNorms 2*h, a final norm h and an untied head V*h.
- Model states per GPU (parameters, gradients, Adam states): DeepSpeed's own estimators
  (`estimate_zero2_model_states_mem_needs`, `estimate_zero3_model_states_mem_needs`, the
  functions its `*_all_cold` tables print); `zero_states` below is the same published
  formula, used when DeepSpeed is not installed.
- Activations per GPU, bf16, after Korthikanti et al. 2022 ("Reducing Activation
  Recomputation"): one layer holds 34*s*b*h bytes (+ 5*a*s*s*b without flash attention);
  with gradient checkpointing only each layer's input (2*s*b*h) is kept, plus one layer
  recomputed in the backward; the logits take 10*s*b*V (bf16, an fp32 copy for the loss,
  its fp32 gradient).
- Training time: 6 * params * tokens * epochs FLOPs at a rate per GPU calibrated on a
  run whose time is known (`calibrated_rate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

GIB = 2**30
OVERHEAD_BYTES = 2 * GIB  # CUDA context, NCCL buffers, allocator slack: a round figure
BUFFER_FACTOR = 1.5  # DeepSpeed's additional_buffer_factor default (CPU memory)
OFFLOADS = ("none", "optimizer", "optimizer+params")


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a Llama-style config.json that size the model."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    kv_heads: int | None = None  # None: = heads (no grouped-query attention)
    tied: bool = False  # tie_word_embeddings

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        """From a Hugging Face config.json (Llama, Mistral, Qwen2 field names)."""
        return cls(
            hidden=int(config["hidden_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=int(config["num_attention_heads"]),
            intermediate=int(config["intermediate_size"]),
            vocab=int(config["vocab_size"]),
            kv_heads=config.get("num_key_value_heads"),
            tied=bool(config.get("tie_word_embeddings", False)),
        )


def param_count(m: ModelShape) -> int:
    kv = m.hidden * (m.kv_heads or m.heads) // m.heads
    layer = 2 * m.hidden * m.hidden + 2 * m.hidden * kv + 3 * m.hidden * m.intermediate
    layer += 2 * m.hidden
    head = 0 if m.tied else m.vocab * m.hidden
    return m.vocab * m.hidden + m.layers * layer + m.hidden + head


def largest_layer(m: ModelShape) -> int:
    """DeepSpeed's `largest_layer_params`: the largest single weight (embeddings or MLP)."""
    return max(m.vocab * m.hidden, m.hidden * m.intermediate)


def zero_states(
    zero: int, params: int, largest: int, gpus_per_node: int, nodes: int, offload: str
) -> tuple[int, int]:
    """(CPU bytes per node, GPU bytes per GPU) of the model states: DeepSpeed 0.14's
    published estimator formulas (zero_init on). ZeRO-2 offloads the optimizer only."""
    total = gpus_per_node * nodes
    if zero == 2:
        if offload != "none":
            return int(params * max(4 * total, 16) * BUFFER_FACTOR), 2 * params
        return int(params * 4 * gpus_per_node * BUFFER_FACTOR), 2 * params + 18 * params // total
    layer = 4 * largest
    if offload == "optimizer+params":
        return int(params * 18 / nodes * BUFFER_FACTOR), layer
    if offload == "optimizer":
        return int(params * 16 / nodes * BUFFER_FACTOR), layer + 2 * params // total
    return int(largest * 4 * gpus_per_node * BUFFER_FACTOR), layer + 18 * params // total


def activation_bytes(
    m: ModelShape, seq: int, micro_batch: int, checkpointing: bool = True, flash: bool = True
) -> int:
    """Activation memory per GPU (see the module docstring for the formula)."""
    s, b, h = seq, micro_batch, m.hidden
    layer = 34 * s * b * h + (0 if flash else 5 * m.heads * s * s * b)
    kept = m.layers * 2 * s * b * h + layer if checkpointing else m.layers * layer
    return kept + 10 * s * b * m.vocab


class Fit(str, Enum):
    FITS = "fits"
    OFFLOAD = "fits with offload"
    NO = "does not fit"
    NO_GPU = "no GPU in the profile"


@dataclass(frozen=True)
class MemoryRow:
    zero: int
    offload: str
    states: int  # bytes per GPU
    activations: int
    cpu: int  # bytes per node (offloaded states and DeepSpeed's buffers)

    @property
    def total(self) -> int:
        return self.states + self.activations + OVERHEAD_BYTES

    def fits(self, gpu_bytes: int, node_bytes: int | None) -> bool:
        return self.total <= gpu_bytes and (node_bytes is None or self.cpu <= node_bytes)


def verdict(rows: list[MemoryRow], zero: int, gpu_bytes: int, node_bytes: int | None) -> Fit:
    """Fits without offload; else fits with some offload; else does not fit."""
    if gpu_bytes <= 0:
        return Fit.NO_GPU
    mine = [r for r in rows if r.zero == zero]
    if any(r.fits(gpu_bytes, node_bytes) for r in mine if r.offload == "none"):
        return Fit.FITS
    return Fit.OFFLOAD if any(r.fits(gpu_bytes, node_bytes) for r in mine) else Fit.NO


def largest_micro_batch(states: int, per_sample: int, gpu_bytes: int) -> int:
    """The largest b with states + b * per_sample + overhead <= the GPU (0: none fits).
    Every activation term is linear in the micro-batch, so this is one division."""
    room = gpu_bytes - states - OVERHEAD_BYTES
    return max(0, room // per_sample) if per_sample > 0 else 0


def update_steps(
    examples: int, micro_batch: int, accumulation: int, gpus: int, epochs: float
) -> int:
    """Optimizer steps as the Hugging Face Trainer counts them: batches per epoch (per
    device) divided by the accumulation, at least one, times the epochs, rounded up."""
    batches = math.ceil(examples / (micro_batch * gpus))
    return math.ceil(max(batches // accumulation, 1) * epochs)


def train_flops(params: int, tokens: int, epochs: float) -> float:
    """6 * N * D per epoch: forward 2ND, backward 4ND (recomputation not counted)."""
    return 6.0 * params * tokens * epochs


def calibrated_rate(params: int, tokens: int, epochs: float, gpus: int, seconds: float) -> float:
    """FLOP/s per GPU that a run of known wall time implies."""
    return train_flops(params, tokens, epochs) / (gpus * seconds)


def train_seconds(params: int, tokens: int, epochs: float, gpus: int, rate: float) -> float:
    return train_flops(params, tokens, epochs) / (gpus * rate)


def sample_seconds(completions: int, gpus: int, per_gpu_rate: float) -> float:
    """Wall time of `completions` on `gpus` replicas at completions/s per GPU."""
    return completions / (gpus * per_gpu_rate)


def eval_seconds(programs: int, cpu_s_per_program: float, cpus: int) -> tuple[float, float]:
    """(CPU-seconds, wall seconds on `cpus` CPUs) of judging `programs`."""
    cpu = programs * cpu_s_per_program
    return cpu, cpu / cpus
