"""The cost arithmetic of `apps-hpc plan` (launch/estimate.py, launch/calibration.py)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import struct
from pathlib import Path

import pytest

from apps_hpc.launch import calibration as cal
from apps_hpc.launch import estimate as est

DATA = Path(__file__).resolve().parents[1] / "data"
SHAPE = est.ModelShape.from_config(
    json.loads((DATA / "deepseek-coder-6.7b-config.json").read_text())
)
GIB = 2**30


def test_the_6_7b_shape_counts_its_parameters_by_hand() -> None:
    h, layers, inter, vocab = 4096, 32, 11008, 32256
    by_hand = 2 * vocab * h + layers * (4 * h * h + 3 * h * inter + 2 * h) + h
    assert est.param_count(SHAPE) == by_hand
    assert abs(by_hand / 6.74e9 - 1) < 0.001  # the model card's "6.7B" (6.74 B)
    assert est.largest_layer(SHAPE) == vocab * h
    assert SHAPE == cal.DEEPSEEK_CODER_6_7B  # the built-in shape is the fixture's


def _safetensors_params(path: Path) -> int:
    """Parameters of a .safetensors file from its header (shapes), without torch."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    return sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")


def test_the_tiny_models_count_matches_its_weights(tiny_model_dir: Path) -> None:
    config = json.loads((tiny_model_dir / "config.json").read_text())
    shape = est.ModelShape.from_config(config)
    # A tied head is stored once, and param_count counts it once.
    assert est.param_count(shape) == _safetensors_params(tiny_model_dir / "model.safetensors")


@pytest.mark.parametrize("gpus,nodes", [(8, 1), (1, 1), (4, 2)])
def test_model_states_are_deepspeeds_own_figures(gpus: int, nodes: int) -> None:
    """Our fallback formulas against DeepSpeed's estimators, and against the tables its
    `*_all_cold` functions print (GiB, two decimals)."""
    pytest.importorskip("deepspeed")
    from deepspeed.runtime.zero import stage3, stage_1_and_2

    p, big = est.param_count(SHAPE), est.largest_layer(SHAPE)
    for offload in ("none", "optimizer"):
        want = stage_1_and_2.estimate_zero2_model_states_mem_needs(
            p, gpus, nodes, cpu_offload=offload != "none"
        )
        assert est.zero_states(2, p, big, gpus, nodes, offload) == want
    for offload in est.OFFLOADS:
        on, both = offload != "none", offload == "optimizer+params"
        cpu, gpu, _ = stage3.estimate_zero3_model_states_mem_needs(
            p, big, gpus, nodes, on, both, True
        )
        assert est.zero_states(3, p, big, gpus, nodes, offload) == (cpu, gpu)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        stage3.estimate_zero3_model_states_mem_needs_all_cold(p, big, gpus, nodes)
    gpu = est.zero_states(3, p, big, gpus, nodes, "none")[1]
    assert f"{gpu / GIB:6.2f}GB | offload_param=none, offload_optimizer=none, zero_init=1" in (
        printed.getvalue()
    )


def test_activations_follow_the_stated_formula() -> None:
    s, b, h, layers, v = 2048, 2, 4096, 32, 32256
    checkpointed = layers * 2 * s * b * h + 34 * s * b * h + 10 * s * b * v
    assert est.activation_bytes(SHAPE, s, b) == checkpointed
    assert est.activation_bytes(SHAPE, s, 2 * b) == 2 * checkpointed  # linear in b
    full = est.activation_bytes(SHAPE, s, b, checkpointing=False, flash=False)
    assert full == layers * (34 * s * b * h + 5 * 32 * s * s * b) + 10 * s * b * v


def _rows(gpus: int, micro_batch: int = 2) -> list[est.MemoryRow]:
    p, big = est.param_count(SHAPE), est.largest_layer(SHAPE)
    act = est.activation_bytes(SHAPE, 2048, micro_batch)
    rows = []
    for zero, offloads in ((2, est.OFFLOADS[:2]), (3, est.OFFLOADS)):
        for offload in offloads:
            cpu, gpu = est.zero_states(zero, p, big, gpus, 1, offload)
            rows.append(est.MemoryRow(zero, offload, gpu, act, cpu))
    return rows


@pytest.mark.parametrize(
    "gpus,gpu_gib,zero2,zero3",
    [
        (8, 40, est.Fit.FITS, est.Fit.FITS),  # the published setting
        (8, 80, est.Fit.FITS, est.Fit.FITS),
        (4, 40, est.Fit.OFFLOAD, est.Fit.FITS),  # ZeRO-2 keeps 2P + 18P/4, ZeRO-3 18P/4
        (2, 40, est.Fit.OFFLOAD, est.Fit.OFFLOAD),
        (2, 80, est.Fit.FITS, est.Fit.FITS),
        (1, 40, est.Fit.OFFLOAD, est.Fit.OFFLOAD),  # 18P on one GPU: 113 GiB
        (1, 80, est.Fit.OFFLOAD, est.Fit.OFFLOAD),
        (1, 16, est.Fit.NO, est.Fit.OFFLOAD),  # ZeRO-2 keeps the bf16 weights: 12.6 GiB
    ],
)
def test_the_fit_verdict(gpus: int, gpu_gib: int, zero2: est.Fit, zero3: est.Fit) -> None:
    rows = _rows(gpus)
    assert est.verdict(rows, 2, gpu_gib * GIB, None) == zero2
    assert est.verdict(rows, 3, gpu_gib * GIB, None) == zero3
    assert est.verdict(rows, 3, 0, None) == est.Fit.NO_GPU


def test_a_node_too_small_for_the_offloaded_states_does_not_fit() -> None:
    rows = _rows(1)
    assert est.verdict(rows, 3, 40 * GIB, None) == est.Fit.OFFLOAD
    assert est.verdict(rows, 3, 40 * GIB, 64 * GIB) == est.Fit.NO  # 18P x 1.5 on the CPU


def test_the_largest_micro_batch_is_the_last_that_fits() -> None:
    per = est.activation_bytes(SHAPE, 2048, 1)
    for gpus, gpu_gib in ((8, 40), (8, 80), (4, 40)):
        states = est.zero_states(
            3, est.param_count(SHAPE), est.largest_layer(SHAPE), gpus, 1, "none"
        )[1]
        b = est.largest_micro_batch(states, per, gpu_gib * GIB)
        assert b >= 1
        assert est.MemoryRow(3, "none", states, b * per, 0).fits(gpu_gib * GIB, None)
        assert not est.MemoryRow(3, "none", states, (b + 1) * per, 0).fits(gpu_gib * GIB, None)
    assert est.largest_micro_batch(200 * GIB, per, 40 * GIB) == 0


def test_planning_the_published_run_back_gives_its_own_time() -> None:
    """A check of the arithmetic, not of the model: the rate calibrated on 8h58m33s with a
    token count, applied to the same count on the same GPUs, gives 8h58m33s back."""
    tokens = cal.estimated_tokens(cal.estimated_examples())
    rate = cal.published_train_rate(tokens)
    p = est.param_count(SHAPE)
    seconds = est.train_seconds(p, tokens, 2.0, 8, rate.value)
    assert abs(seconds / (8 * 3600 + 58 * 60 + 33) - 1) < 0.05
    # Twice the data on twice the GPUs takes as long; on half the GPUs, twice as long.
    assert est.train_seconds(p, 2 * tokens, 2.0, 16, rate.value) == pytest.approx(seconds)
    assert est.train_seconds(p, tokens, 2.0, 4, rate.value) == pytest.approx(2 * seconds)


def test_update_steps_count_as_the_trainer_does() -> None:
    # 76,176 examples, 2 per device x 8 GPUs = 4,761 batches; // 16 = 297 per epoch.
    assert est.update_steps(76176, 2, 16, 8, 2.0) == 594
    assert est.update_steps(10, 4, 16, 1, 1.0) == 1  # fewer batches than the accumulation
    assert est.update_steps(48, 4, 1, 1, 1.5) == 18


def test_sampling_and_eval_time() -> None:
    rate = cal.published_sample_rate().value
    assert est.sample_seconds(3765 * 10, 8, rate) == pytest.approx(16 * 60 + 35)
    cpu, wall = est.eval_seconds(1000, 0.5, 100)
    assert (cpu, wall) == (500, 5)
