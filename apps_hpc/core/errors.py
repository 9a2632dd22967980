"""The errors the CLI turns into a one-line message and a non-zero exit."""


class AppsHpcError(Exception):
    """A user-facing error: the message alone says what is wrong and where."""


class DataError(AppsHpcError):
    """A malformed input record: the message names the file, the line (or row) and the field."""

    def __init__(self, path: object, line: int, field: str, problem: str) -> None:
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        super().__init__(f"{path}:{line}: field '{field}': {problem}")


# The optional dependencies, by the top-level module a stage imports, and what installs it.
EXTRAS = {
    "tokenizers": "train",
    "transformers": "train",
    "torch": "train",
    "llamafactory": "train",
    "deepspeed": "train",
    "huggingface_hub": "fetch",
    "pyarrow": "parquet",
}
NOT_ON_PYPI = {"vllm": "vLLM runs in the container image (make image) on a GPU node"}


def missing_dependency(exc: ModuleNotFoundError) -> str | None:
    """One line for a missing optional dependency, naming what installs it; None when the
    module is not one of them (a real bug, whose traceback should be seen)."""
    name = (exc.name or "").split(".")[0]
    if name in EXTRAS:
        return f"{name} is not installed: pip install 'apps-hpc[{EXTRAS[name]}]'"
    if name in NOT_ON_PYPI:
        return f"{name} is not installed: {NOT_ON_PYPI[name]}"
    return None
