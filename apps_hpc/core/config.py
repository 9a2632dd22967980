"""The experiment config: defaults < YAML < `--set key=value`, strictly checked.

An experiment YAML (see `configs/experiments/dscoder_apps.yaml`) names the experiment
folder (`<root>/<name>`), the model, the APPS source and one section per stage. An
unknown key is an error naming the file and the key.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.schema import CONFIG, NOT_KEYS, EvalSection, ExperimentFields, first_problem

PACKAGE_CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # shipped as package data
CONFIG_DIR_ENV = "APPS_HPC_CONFIG_DIR"
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


@dataclass(config=CONFIG)
class Experiment(ExperimentFields):
    """An experiment config (`schema.ExperimentFields`) and the folders it names."""

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


_EXPERIMENT = TypeAdapter(Experiment)


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


def check(data: dict[str, Any], where: str) -> Experiment:
    """`data` as an Experiment, every key known and every value allowed by the schema;
    else one error naming `where` and the field."""
    bad = [k for k in NOT_KEYS if k in data]
    if bad:
        raise AppsHpcError(f"{where}: unknown key '{bad[0]}'")
    try:
        return _EXPERIMENT.validate_python(data)
    except ValidationError as exc:
        key, problem = first_problem(exc, Experiment)
        said = problem if problem.startswith("unknown key") else f"{key}: {problem}"
        raise AppsHpcError(f"{where}: {said}") from None


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
        data = read_yaml(path)
        check(copy.deepcopy(data), str(path))  # its own errors name the file
    for key, value in sets or []:
        _set_dotted(data, key, value)
    exp = check(data, "--set" if sets else str(path or "defaults"))
    exp.source = path.resolve() if path else None
    return absolute_paths(exp)


def eval_settings(sets: list[tuple[str, Any]]) -> EvalSection:
    """The `eval` section with `--set eval.<key>=<value>` applied, checked like an
    experiment's (a standalone `apps-hpc eval` has no experiment, only this section)."""
    data: dict[str, Any] = {}
    for key, value in sets:
        if not key.startswith("eval."):
            raise AppsHpcError(f"--set {key}: eval takes eval.* keys only (eval.limits.memory_mb)")
        _set_dotted(data, key, value)
    return check(data, "--set").eval


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader (no tags that build Python objects), refusing a key written twice
    in one mapping: PyYAML keeps the last silently, so a second `sample:` section would
    replace the first whole."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base`: its keys may be overridden here, as YAML means
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if not isinstance(key, str | int | float | bool):
                continue  # an unhashable key: SafeLoader's own error says it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


MAX_YAML_VALUES = 100_000  # a config holds hundreds; aliases may make billions (a "bomb")


def _count_values(data: Any, budget: int) -> int:
    """The values of `data` with every alias expanded, counted up to `budget` + 1."""
    count, stack = 0, [data]
    while stack and count <= budget:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file holding a mapping; a syntax error names the file, line and column.
    Refused too: a key twice in one mapping, text that is not UTF-8, nesting too deep,
    and aliases that expand to more than MAX_YAML_VALUES values."""
    try:
        text = path.read_bytes().decode("utf-8")
        data = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except UnicodeDecodeError as exc:
        raise AppsHpcError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise AppsHpcError(f"{path}: not valid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = getattr(exc, "problem", None) or str(exc)
        raise AppsHpcError(f"{at}: not valid YAML: {what}".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise AppsHpcError(f"{path}: expected a mapping at the top level")
    if _count_values(data, MAX_YAML_VALUES) > MAX_YAML_VALUES:
        raise AppsHpcError(
            f"{path}: its aliases (*name) expand to more than {MAX_YAML_VALUES:,} values; "
            "write the values out"
        )
    return data


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
