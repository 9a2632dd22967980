"""The errors the CLI turns into a one-line message and a non-zero exit."""


class AppsHpcError(Exception):
    """A user-facing error: the message alone says what is wrong and where."""


class DataError(AppsHpcError):
    """A malformed input record: the message names the file, the line (or row) and the field."""

    def __init__(self, path: object, line: int, field: str, problem: str) -> None:
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        super().__init__(f"{path}:{line}: field '{field}': {problem}")
