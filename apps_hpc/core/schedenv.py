"""What a stage needs from the scheduler, read from the environment (SLURM or none)."""

from __future__ import annotations

import os


def cpus_granted() -> int:
    """CPUs this task may use: SLURM's grant, else this process's CPU affinity."""
    for var in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def split_top_level(text: str) -> list[str]:
    """`text` split at the commas that are outside brackets: `a,b[1-2]` -> [a, b[1-2]]."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise ValueError(f"unbalanced brackets in node list {text!r}")
    return [p.strip() for p in [*parts, current] if p.strip()]


def expand_range(spec: str) -> list[str]:
    """`001-003,007` -> [001, 002, 003, 007]: zero padding kept from the first number."""
    out: list[str] = []
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"bad range {part!r} in node list")
        out += [str(n).zfill(len(low)) for n in range(int(low), int(high or low) + 1)]
    return out


def expand_host(pattern: str) -> list[str]:
    """`rack[1-2]-node[01-02]` -> rack1-node01, rack1-node02, rack2-node01, rack2-node02
    (the leftmost bracket varies slowest, as in `scontrol show hostnames`)."""
    if "[" not in pattern:
        return [pattern]
    prefix, rest = pattern.split("[", 1)
    spec, _, suffix = rest.partition("]")
    return [prefix + n + tail for n in expand_range(spec) for tail in expand_host(suffix)]


def expand_nodelist(nodelist: str) -> list[str]:
    """Every host of a SLURM node list, in order: `a,b[1-2]` -> [a, b1, b2]. Pure; the
    same answer as `scontrol show hostnames` (checked against it in the tests)."""
    return [host for item in split_top_level(nodelist) for host in expand_host(item)]


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: `rack[1-2]-node[01-02]` -> `rack1-node01`,
    `gpu[03-05,9],cpu1` -> `gpu03`."""
    hosts = expand_nodelist(nodelist)
    if not hosts:
        raise ValueError(f"empty node list {nodelist!r}")
    return hosts[0]


def scontrol_hostnames(nodelist: str) -> list[str] | None:
    """`scontrol show hostnames`'s expansion, or None when there is no scontrol (or no
    SLURM configuration for it to read)."""
    import shutil
    import subprocess

    if shutil.which("scontrol") is None:
        return None
    done = subprocess.run(
        ["scontrol", "show", "hostnames", nodelist],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    hosts = done.stdout.split()
    return hosts if done.returncode == 0 and hosts else None


def node_address(host: str) -> str:
    """An address for `host` that torchrun can connect to: the name itself when it
    resolves, else the NodeAddr SLURM has for it (nodes may be names only SLURM knows,
    as on the local multi-node test cluster)."""
    import socket
    import subprocess

    try:
        socket.getaddrinfo(host, None)
        return host
    except OSError:
        pass
    done = subprocess.run(
        ["scontrol", "show", "node", "-o", host],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    for word in done.stdout.split():
        if word.startswith("NodeAddr="):
            return word.partition("=")[2]
    return host


def job_first_host(nodelist: str) -> str:
    """The rendezvous address of a job: its first host (SLURM's own expansion where
    scontrol answers, else the pure parser; the two agree, the tests check it)."""
    hosts = scontrol_hostnames(nodelist)
    return node_address(hosts[0] if hosts else first_host(nodelist))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rendezvous(environ: dict[str, str] | None = None) -> dict[str, str]:
    """NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT for torchrun: kept when already set
    (submitit exports them), else from SLURM's job (one task per node), else local."""
    env = dict(os.environ if environ is None else environ)
    if "SLURM_JOB_ID" in env and "SLURM_JOB_NODELIST" in env:
        found = {
            "NNODES": env.get("SLURM_NNODES", env.get("SLURM_JOB_NUM_NODES", "1")),
            "NODE_RANK": env.get("SLURM_NODEID", "0"),
            "MASTER_ADDR": env.get("MASTER_ADDR") or job_first_host(env["SLURM_JOB_NODELIST"]),
            "MASTER_PORT": str(20000 + int(env["SLURM_JOB_ID"]) % 20000),
        }
    else:
        found = {
            "NNODES": "1",
            "NODE_RANK": "0",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(free_port()),
        }
    return {key: env.get(key, value) for key, value in found.items()}


def array_task(environ: dict[str, str] | None = None) -> tuple[int, int] | None:
    """(index, count) of this SLURM array task, counted from the array's first id."""
    env = os.environ if environ is None else environ
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
    return int(env["SLURM_ARRAY_TASK_ID"]) - first, int(env["SLURM_ARRAY_TASK_COUNT"])


def visible_gpus(environ: dict[str, str] | None = None) -> list[str]:
    """The GPU ids this process may use: CUDA_VISIBLE_DEVICES, else every GPU torch sees."""
    env = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in env:
        return [g for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []
