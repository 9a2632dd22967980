"""Generation engines behind one small interface.

- `vllm`: the production engine (the container's pinned vLLM 0.4.0.post1), imported
  lazily; requests go to `LLMEngine.add_request` with a per-problem seed and come back
  one finished problem at a time from `LLMEngine.step()`.
- `transformers`: CPU (tests, the laptop demo): `generate` with sampling, one problem at
  a time, `torch.manual_seed(problem seed)` first.

The keyword arguments each engine passes are built by pure functions
(`vllm_llm_kwargs`, `vllm_sampling_kwargs`), which the tests check against the
signatures in the pinned vLLM wheel.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from apps_hpc.config import SampleSection, Sampling
from apps_hpc.errors import AppsHpcError
from apps_hpc.prompts import EOT


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
    gpu_memory_utilization: float = 0.9
    device: str = "auto"  # transformers: cpu, cuda or auto


def vllm_llm_kwargs(opts: EngineOptions) -> dict[str, Any]:
    """Arguments of `vllm.LLM(...)` (max_model_len goes on to EngineArgs)."""
    return {
        "model": opts.model,
        "tokenizer": opts.model,
        "tensor_parallel_size": opts.gpus_per_model,
        "dtype": opts.dtype,
        "seed": opts.sampling.seed,
        "trust_remote_code": True,
        "gpu_memory_utilization": opts.gpu_memory_utilization,
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
        self.llm = vllm.LLM(**vllm_llm_kwargs(opts))

    def generate(self, requests: Iterable[Request]) -> Iterator[tuple[Request, Generation]]:
        engine = self.llm.llm_engine
        by_id: dict[str, Request] = {}
        for i, req in enumerate(requests):
            params = self._vllm.SamplingParams(**vllm_sampling_kwargs(self.opts.sampling, req.seed))
            by_id[str(i)] = req
            engine.add_request(str(i), req.prompt, params, None)
        while engine.has_unfinished_requests():
            for out in engine.step():
                if out.finished:
                    texts = [c.text for c in out.outputs]
                    tokens = sum(len(c.token_ids) for c in out.outputs)
                    yield by_id.pop(out.request_id), Generation(texts, tokens)


class TransformersEngine:
    def __init__(self, opts: EngineOptions) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise AppsHpcError("the transformers engine needs apps-hpc[train]") from None
        self.torch, self.opts = torch, opts
        device = opts.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.tok = AutoTokenizer.from_pretrained(opts.model)
        self.model = AutoModelForCausalLM.from_pretrained(opts.model).to(device).eval()
        self.eot = self.tok.convert_tokens_to_ids(EOT)
        if self.eot is None or self.eot == self.tok.unk_token_id:
            self.eot = self.tok.eos_token_id

    def _one(self, req: Request) -> Generation:
        s = self.opts.sampling
        self.torch.manual_seed(req.seed)
        enc = self.tok(req.prompt, return_tensors="pt").to(self.device)
        with self.torch.no_grad():
            out = self.model.generate(
                **enc,
                do_sample=True,
                temperature=s.temperature,
                top_p=s.top_p,
                max_new_tokens=s.max_tokens,
                num_return_sequences=s.n,
                eos_token_id=self.eot,
                pad_token_id=self.tok.pad_token_id or self.eot,
            )
        rows = out[:, enc["input_ids"].shape[1] :].tolist()
        rows = [row[: row.index(self.eot) + 1] if self.eot in row else row for row in rows]
        texts = self.tok.batch_decode(rows, skip_special_tokens=True)
        return Generation(texts, sum(len(row) for row in rows))

    def generate(self, requests: Iterable[Request]) -> Iterator[tuple[Request, Generation]]:
        for req in requests:
            yield req, self._one(req)


def make_engine(name: str, opts: EngineOptions) -> Engine:
    if name == "vllm":
        return VllmEngine(opts)
    if name == "transformers":
        return TransformersEngine(opts)
    raise AppsHpcError(f"unknown engine {name!r} (vllm or transformers)")
