"""No traceback reaches a user: every command, given the bad inputs users really give
(a mistyped --set, a bad profile, empty files, wrong --out forms, missing folders), says
one line on stderr and exits 2; Ctrl-C exits 130 with nothing torn."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import CPU_EXPERIMENT, REPO, run_cli

HIDE = "tokenizers,transformers,torch,llamafactory,deepspeed,huggingface_hub,pyarrow,vllm"
NO_EXTRAS = {
    "PYTHONPATH": f"{REPO / 'tests' / 'no_extras'}{os.pathsep}{REPO}",
    "APPS_HPC_HIDE": HIDE,
}


def _files(tmp: Path, shared: Path) -> dict[str, Path]:
    sample = {"problem_id": 0, "difficulty": "interview"}
    result = {**sample, "model": "m", "n": 0, "c": 0, "verdicts": []}
    bogus = {**sample, "model": "m", "n": 2, "c": 2, "verdicts": ["bogus"], "tests": "x"}
    files = {
        "empty": tmp / "empty.jsonl",
        "no_codes": tmp / "no-codes.jsonl",
        "n0": tmp / "results" / "n0.jsonl",
        "bogus": tmp / "bogus.jsonl",
        "bad_yaml": tmp / "bad.yaml",
        "profile": tmp / "site.yaml",
        "shards": tmp / "shards",
        "test_rows": shared / "test-sample.jsonl",
        "deep": tmp / "deep.jsonl",
        "dup_key": tmp / "dup-key.jsonl",
        "nan": tmp / "nan.jsonl",
        "fifo": tmp / "fifo.jsonl",
        "twice": tmp / "twice.jsonl",
        "dup_yaml": tmp / "dup.yaml",
        "bomb_yaml": tmp / "bomb.yaml",
        "latin1_yaml": tmp / "latin1.yaml",
        "deep_rows": tmp / "test-deep.jsonl",
        "locked": tmp / "locked.jsonl",
        "prompts": tmp / "prompts.jsonl",
    }
    files["empty"].write_text("")
    files["no_codes"].write_text(json.dumps({**sample, "codes": []}) + "\n")
    files["n0"].parent.mkdir()
    files["n0"].write_text(json.dumps(result) + "\n")
    files["bogus"].write_text(json.dumps(bogus) + "\n")
    files["bad_yaml"].write_text("name: x\nsample: [\n")
    profile = (REPO / "configs/clusters/slurm-default.yaml").read_text()
    files["profile"].write_text(profile.replace("time: 60 ", "time: 4h "))
    files["shards"].mkdir()
    (files["shards"] / "shard-00000-of-00002.jsonl").write_text("")
    ok = {**result, "n": 1, "c": 1, "verdicts": ["pass"]}
    files["deep"].write_text("[" * 10_000 + "]" * 10_000 + "\n")
    files["dup_key"].write_text(json.dumps(ok)[:-1] + ', "problem_id": 7}\n')
    files["nan"].write_text(json.dumps(ok)[:-1] + ', "seconds": NaN}\n')
    os.mkfifo(files["fifo"])
    files["twice"].write_text(
        json.dumps(ok) + "\n" + json.dumps({**ok, "c": 0, "verdicts": ["timeout"]}) + "\n"
    )
    files["dup_yaml"].write_text("sample:\n  n: 3\nsample:\n  seed: 1\n")
    aliases = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for before, name in zip("abcdefg", "bcdefgh", strict=True):  # 10**8 values, expanded
        aliases.append(f"{name}: &{name} [{', '.join([f'*{before}'] * 10)}]")
    files["bomb_yaml"].write_text("train:\n  overrides:\n" + "".join(f"    {x}\n" for x in aliases))
    files["latin1_yaml"].write_bytes("name: caf\u00e9\n".encode("latin-1"))
    row = json.loads((shared / "test-sample.jsonl").read_text().splitlines()[0])
    files["deep_rows"].write_text(json.dumps({**row, "input_output": "[" * 10_000}) + "\n")
    files["locked"].write_text(json.dumps(ok) + "\n")
    files["prompts"].write_text(json.dumps({**sample, "prompt": "hi"}) + "\n")
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": "now"}
    (tmp / "locked.jsonl.lock").write_text(json.dumps(holder) + "\n")
    return files


def _cases(tmp: Path, f: dict[str, Path]) -> dict[str, list[str]]:
    apps = str(f["test_rows"])
    ev = ["--apps", apps, "--out", str(tmp / "r.jsonl")]
    eval_into = ["eval", "--samples", str(f["no_codes"]), "--apps", apps, "--out"]
    return {
        "train-set-type": ["train", "--config", "demo", "--set", "sample.n=ten"],
        "train-set-engine": ["train", "--config", "demo", "--set", "sample.engine=foo"],
        "train-set-n0": ["train", "--config", "demo", "--set", "sample.n=0"],
        "train-set-temperature": ["train", "--config", "demo", "--set", "sample.temperature=-3"],
        "prepare-set": ["prepare", "--config", "demo", "--set", "prepare.seed=x"],
        "sample-set": ["sample", "--model", "m", "--set", "sample.top_p=2"],
        "sample-temperature": ["sample", "--model", "m", "--temperature", "-3"],
        "sample-top-p": ["sample", "--model", "m", "--top-p", "1.5"],
        "eval-timeout": ["eval", "--samples", str(f["empty"]), *ev, "--timeout", "0"],
        "eval-set-limit": ["eval", "--samples", "s", *ev, "--set", "eval.limits.memory_mb=3"],
        "eval-set-unknown": ["eval", "--samples", "s", *ev, "--set", "eval.limits.memry_mb=9"],
        "eval-set-not-eval": ["eval", "--samples", "s", *ev, "--set", "sample.n=3"],
        "train-set-eval": ["train", "--config", "demo", "--set", "eval.limits.max_procs=0"],
        "unknown-command": ["evaluate", "--samples", "s"],
        "pipeline-set": [
            "submit",
            "pipeline",
            "--config",
            str(CPU_EXPERIMENT),
            "--set",
            "sample.n=ten",
        ],
        "demo-set": ["demo", "--root", str(tmp), "--set", "sample.n=ten"],
        "bad-yaml": ["train", "--config", str(f["bad_yaml"])],
        "profile-time": ["submit", "eval", "--cluster", str(f["profile"]), "--samples", "s", *ev],
        "prepare-no-out": ["prepare", "--apps", apps, "--out", str(tmp / "data")],
        "sample-empty-prompts": [
            "sample",
            "--model",
            "m",
            "--prompts",
            str(f["empty"]),
            "--out",
            str(tmp / "s.jsonl"),
        ],
        "sample-out-json": [
            "sample",
            "--model",
            "m",
            "--prompts",
            str(f["empty"]),
            "--out",
            str(tmp / "s.json"),
        ],
        "merge-incomplete": ["merge-samples", str(f["shards"])],
        "merge-nowhere": ["merge-samples", str(tmp / "nowhere")],
        "eval-empty": ["eval", "--samples", str(f["empty"]), *ev],
        "eval-no-codes": ["eval", "--samples", str(f["no_codes"]), *ev],
        "eval-missing": ["eval", "--samples", str(tmp / "missing.jsonl"), *ev],
        "eval-out-folder": [*eval_into, str(tmp)],
        "report-n0": ["report", str(f["n0"]), "--no-plot"],
        "report-bogus": ["report", str(f["bogus"]), "--no-plot"],
        "show-bogus": ["show", str(f["bogus"]), "--problem", "0"],
        "report-missing": ["report", str(tmp / "missing.jsonl")],
        "status-nowhere": ["status", str(tmp / "nowhere")],
        "cancel-nowhere": ["cancel", str(tmp / "nowhere")],
        "config-missing": ["experiment-path", "--config", str(tmp / "missing.yaml")],
        "tiny-model-unwritable": ["tiny-model", "--out", "/proc/apps-hpc-cannot-write-here"],
        "train-profile-as-config": ["train", "--config", str(f["profile"])],
        "report-deep-json": ["report", str(f["deep"]), "--no-plot"],
        "report-duplicate-key": ["report", str(f["dup_key"]), "--no-plot"],
        "show-nan": ["show", str(f["nan"]), "--problem", "0"],
        "report-fifo": ["report", str(f["fifo"]), "--no-plot"],
        "eval-out-fifo": [*eval_into, str(f["fifo"])],
        "show-problem-twice": ["show", str(f["twice"]), "--problem", "0"],
        "yaml-duplicate-section": ["experiment-path", "--config", str(f["dup_yaml"])],
        "yaml-alias-bomb": ["experiment-path", "--config", str(f["bomb_yaml"])],
        "yaml-not-utf8": ["experiment-path", "--config", str(f["latin1_yaml"])],
        "eval-apps-deep-json": [
            "eval",
            "--samples",
            str(f["no_codes"]),
            "--apps",
            str(f["deep_rows"]),
            "--out",
            str(tmp / "r.jsonl"),
        ],
        "eval-cache-is-a-file": [
            "eval",
            "--samples",
            str(f["no_codes"]),
            *ev,
            "--cache",
            str(f["empty"]),
        ],
        "report-being-written": ["report", str(f["locked"]), "--no-plot"],
        "sample-model-not-a-model": [
            "sample",
            "--model",
            str(tmp),
            "--engine",
            "transformers",
            "--prompts",
            str(f["prompts"]),
            "--out",
            str(tmp / "s.jsonl"),
        ],
    }


CASES = list(
    _cases(
        Path("t"),
        {
            k: Path(k)
            for k in (
                "empty",
                "no_codes",
                "n0",
                "bogus",
                "bad_yaml",
                "profile",
                "shards",
                "test_rows",
                "deep",
                "dup_key",
                "nan",
                "fifo",
                "twice",
                "dup_yaml",
                "bomb_yaml",
                "latin1_yaml",
                "deep_rows",
                "locked",
                "prompts",
            )
        },
    )
)


@pytest.mark.parametrize("extras", ["installed", "missing"])
@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_2(
    shared_apps: Path, tmp_path: Path, case: str, extras: str
) -> None:
    args = _cases(tmp_path, _files(tmp_path, shared_apps))[case]
    r = run_cli(*args, env={**os.environ, **NO_EXTRAS} if extras == "missing" else None)
    assert r.returncode == 2, (args, r.stderr[-2000:])
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, (args, r.stderr)
    assert "Traceback" not in r.stderr
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_missing_extra_names_what_installs_it(tmp_path: Path) -> None:
    r = run_cli("tiny-model", "--out", str(tmp_path / "m"), env={**os.environ, **NO_EXTRAS})
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "error: tokenizers is not installed: pip install 'apps-hpc[train]'" in r.stderr


def test_ctrl_c_exits_130_and_leaves_nothing_torn(shared_apps: Path, tmp_path: Path) -> None:
    samples, out = tmp_path / "s.jsonl", tmp_path / "r.jsonl"
    with samples.open("w") as fh:
        for line in (shared_apps / "train-sample.jsonl").read_text().splitlines()[:30]:
            row = json.loads(line)
            codes = [*json.loads(row["solutions"])[:2], "import time\ntime.sleep(0.5)"]
            rec = {"problem_id": row["problem_id"], "split": "train", "codes": codes}
            fh.write(json.dumps({**rec, "difficulty": row["difficulty"]}) + "\n")
    cmd = [sys.executable, "-m", "apps_hpc", "eval", "-q", "--samples", str(samples)]
    cmd += ["--apps", str(shared_apps / "train-sample.jsonl"), "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or not out.read_text().count("\n")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert err.splitlines()[-1] == "interrupted" and "Traceback" not in err
    lines = out.read_text().splitlines(keepends=True)
    assert 1 <= len(lines) < 30 and all(x.endswith("\n") and json.loads(x) for x in lines)
    assert not list(tmp_path.glob("*.tmp"))
