"""`apps-hpc demo` (`make demo`): the full pipeline on a laptop, through the same
`submit pipeline` code path as on a cluster, with the local executor (or the local SLURM
when one answers). Re-running resumes: finished stages are skipped."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from apps_hpc.core.config import find_config, load_experiment, parse_sets
from apps_hpc.launch import slurm
from apps_hpc.launch.cli_support import submit_pipeline

BUNDLED_APPS = Path(__file__).resolve().parents[1] / "data" / "mini_apps"


def pick_cluster(choice: str) -> str:
    if choice != "auto":
        return choice
    up, _ = slurm.ping(timeout_s=30)
    return "slurm-default" if up else "local"


def _tiny_model(path: Path, say: Callable[[str], None]) -> None:
    from apps_hpc.tools.tiny_model import DEMO, built_spec_matches, tiny_model

    if built_spec_matches(path, DEMO):
        say(f"skip tiny-model: already built in {path}")
        return
    again = "rebuilding (another size)" if (path / "config.json").exists() else "building"
    say(f"{again} the tiny model in {path} (hidden size {DEMO.hidden_size})")
    tiny_model(path, DEMO)


def run_demo(
    config: Path | None,
    root: Path | None,
    apps: str | None,
    cluster: str,
    sets: list[str],
    say: Callable[[str], None] = print,
    force: bool = False,
) -> Path:
    start = time.monotonic()
    config = config or find_config("experiments", "demo")
    exp = load_experiment(config)
    root = (root or Path(exp.root)).resolve()
    model = root / "tiny-model"
    apps_path = str(Path(apps).resolve()) if apps and Path(apps).exists() else apps
    defaults = [f"root={root}", f"model={model}", f"apps={apps_path or BUNDLED_APPS}"]
    exp = load_experiment(
        config or find_config("experiments", "demo"), parse_sets([*defaults, *sets])
    )
    _tiny_model(Path(exp.model), say)
    chosen = pick_cluster(cluster)
    say(f"running the pipeline on the {chosen!r} profile in {exp.dir}")
    sys.stdout.flush()
    submit_pipeline(exp, chosen, True, False, None, 1, force)
    report = exp.report_dir
    say("")
    say((report / "summary.md").read_text(encoding="utf-8").rstrip())
    say("")
    for name in ("training_loss.png", "pass_at_k.png"):
        say(f"plot: {report / name}")
    say(f"page: {report / 'index.html'}")
    say(f"experiment: {exp.dir}")
    say(f"finished in {time.monotonic() - start:.0f}s")
    return exp.dir
