"""`apps-hpc doctor`: is this machine (or image) fit to run the experiment?

Each check prints one line: ok, skip (does not apply here, e.g. no GPU) or FAIL. The exit
code is non-zero when a check failed. Versions are compared with the container's lock,
which the package carries (`apps_hpc/data/requirements-cp310.lock`); outside the image a
difference is reported, and is a failure only with `--strict` (what the image's `%test`
runs).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from apps_hpc.core.checks import Check
from apps_hpc.provenance.identity import PACKAGE_DIR, installed

LOCK = PACKAGE_DIR / "data" / "requirements-cp310.lock"  # package data
VERSIONS = PACKAGE_DIR / "data" / "versions.env"  # flash-attn comes from its release, not the lock
SHM_MIN_BYTES = 1 << 30  # vLLM/NCCL die with SIGBUS on a small /dev/shm
PINNED = ("torch", "vllm", "deepspeed", "llamafactory", "transformers", "flash-attn")


def lock_versions(path: Path = LOCK) -> dict[str, str]:
    pins = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                name, version = line.split("==", 1)
                pins[name.strip().lower()] = version.strip()
    return pins


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = sys.version_info >= (3, 10)
    return Check("python", "ok" if ok else "fail", f"{version} ({sys.executable})")


def check_version(dist: str, strict: bool, pins: dict[str, str]) -> Check:
    have, want = installed(dist), pins.get(dist)
    if have is None:
        status = "fail" if strict else "skip"
        return Check(dist, status, f"not installed (lock: {want or '-'})")
    if want and have.split("+")[0] != want.split("+")[0]:
        return Check(dist, "fail" if strict else "ok", f"{have} (lock pins {want})")
    return Check(dist, "ok", have + (" (as locked)" if want else ""))


def check_torch_cuda() -> tuple[Check, int]:
    try:
        import torch
    except ImportError:
        return Check("cuda", "skip", "torch not installed"), 0
    if not torch.cuda.is_available():
        return Check("cuda", "skip", f"no GPU visible (torch {torch.__version__})"), 0
    count = torch.cuda.device_count()
    names = ", ".join(sorted({torch.cuda.get_device_name(i) for i in range(count)}))
    return Check("cuda", "ok", f"CUDA {torch.version.cuda}, {count} GPU(s): {names}"), count


def check_flash_attn(gpus: int) -> Check:
    if gpus == 0:
        return Check("flash-attn kernel", "skip", "no GPU")
    try:
        import torch
        from flash_attn import flash_attn_func
    except ImportError as exc:
        return Check("flash-attn kernel", "fail", f"import failed: {exc}")
    q = torch.randn(1, 16, 2, 64, device="cuda", dtype=torch.float16)
    out = flash_attn_func(q, q, q, causal=True)
    ok = bool(torch.isfinite(out).all())
    return Check("flash-attn kernel", "ok" if ok else "fail", f"output {tuple(out.shape)}")


def check_nccl(gpus: int) -> Check:
    if gpus == 0:
        return Check("nccl", "skip", "no GPU")
    import torch

    version = torch.cuda.nccl.version()
    return Check(
        "nccl", "ok", ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
    )


def check_shm(path: str = "/dev/shm") -> Check:
    if not os.path.isdir(path):
        return Check("shared memory", "fail", f"{path} missing")
    free = shutil.disk_usage(path).free
    detail = f"{free / 2**30:.1f} GiB free in {path}"
    if free < SHM_MIN_BYTES:
        return Check("shared memory", "fail", detail + " (< 1 GiB: use --shm-size / bigger tmpfs)")
    return Check("shared memory", "ok", detail)


def check_root(root: Path) -> Check:
    """The root, or the folder it would be created in, is writable (nothing is created)."""
    existing = root.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return Check("experiment root", "fail", f"{root}: {existing} is not a writable folder")
    return Check("experiment root", "ok", f"{root.absolute()} is writable")


def check_isolation() -> Check:
    """Start one real sandbox worker and report the isolation it got (WARN without
    namespaces: programs then run as this user, see docs/evaluator.md, the sandbox)."""
    from apps_hpc.evaluate.pool import EvalPool, PoolOptions

    try:
        with EvalPool(PoolOptions(workers=1)) as pool:
            isolation = pool.isolation
    except RuntimeError as exc:
        return Check("sandbox isolation", "fail", str(exc))
    return Check(
        "sandbox isolation", "ok" if isolation.startswith("namespaces") else "warn", isolation
    )


def _flash_attn_pin(path: Path = VERSIONS) -> str | None:
    """flash-attn is installed from its release wheel, not the lock: its pin is here."""
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("FLASH_ATTN_VERSION="):
                return line.split("=", 1)[1].strip()
    return None


def run_checks(root: Path | None, strict: bool) -> list[Check]:
    pins = lock_versions()
    flash = _flash_attn_pin()
    if flash:
        pins["flash-attn"] = flash
    checks = [check_python()]
    checks += [check_version(dist, strict, pins) for dist in PINNED if dist != "flash-attn"]
    cuda, gpus = check_torch_cuda()
    checks += [cuda, check_version("flash-attn", strict, pins)]
    checks += [check_flash_attn(gpus), check_nccl(gpus), check_shm()]
    checks += [check_root(root)] if root is not None else []
    checks.append(check_isolation())
    return checks


def doctor(
    root: Path | None,
    strict: bool,
    say: Callable[[str], None] = print,
    extra: list[Check] | None = None,
) -> int:
    """Print every check (this machine's, then `extra`: an experiment's preflight);
    return the number of failures."""
    checks = run_checks(root, strict) + list(extra or [])
    for check in checks:
        say(check.line())
    return sum(c.status == "fail" for c in checks)


__all__ = ["Check", "doctor", "lock_versions", "run_checks"]
