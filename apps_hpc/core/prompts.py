"""The one prompt shared by training and sampling, and the chat template around it.

Pure functions only. The user message states the problem, the starter code and the
input format ("standard input" vs "call-based"), as the APPS prompt does; the chat
template is deepseek-coder-instruct's (LlamaFactory's `deepseekcoder` template, turns
end with `<|EOT|>`), so what `sample` sends is exactly what `train` taught.
"""

from __future__ import annotations

import re

EOT = "<|EOT|>"
BOS = "<｜begin▁of▁sentence｜>"
# deepseek-coder-instruct's default system prompt (LlamaFactory `deepseekcoder`).
SYSTEM = (
    "You are an AI programming assistant, utilizing the DeepSeek Coder model, developed by "
    "DeepSeek Company, and you only answer questions related to computer science. For "
    "politically sensitive questions, security and privacy issues, and other non-computer "
    "science questions, you will refuse to answer.\n"
)
STDIN_FORMAT = (
    "Use Standard Input format: read the input from standard input and print the answer "
    "to standard output."
)
CALL_FORMAT = "Use Call-Based format: complete the starter code; your function is called directly."


def user_prompt(question: str, starter_code: str, fn_name: str | None) -> str:
    """The user message for one APPS problem (`fn_name` None = standard input)."""
    parts = ["Solve the following programming problem in Python 3.", "", "QUESTION:"]
    parts.append(question.strip())
    starter = starter_code.strip("\n")
    if starter.strip():
        parts += ["", "Starter code:", "```python", starter.rstrip(), "```"]
    parts += ["", STDIN_FORMAT if fn_name is None else CALL_FORMAT]
    parts += ["", "Answer with the complete program in a single ```python code block."]
    return "\n".join(parts)


def normalize_code(code: str) -> str:
    """Consistent line endings, no trailing whitespace, no leading/trailing blank lines."""
    lines = code.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def answer(code: str) -> str:
    """The assistant turn for training: the normalised program as one fenced block."""
    return f"```python\n{normalize_code(code)}\n```"


def chat_prompt(user: str, system: str = SYSTEM) -> str:
    """The text the model sees before its answer, as LlamaFactory's `deepseekcoder`
    template renders a single-turn conversation (the tokenizer adds BOS)."""
    return f"{system}### Instruction:\n{user}\n### Response:"


_FENCE = re.compile(r"```([^\n`]*)\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = ("python", "py", "python3", "")


def extract_code(completion: str) -> str:
    """The program in a completion: the last fenced block tagged Python (or untagged),
    else the last fenced block, else the whole text (anything after `<|EOT|>` dropped)."""
    text = completion.split(EOT, 1)[0]
    blocks = [(tag.strip().lower(), body) for tag, body in _FENCE.findall(text)]
    python = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    if python:
        return python[-1].rstrip() + "\n"
    if blocks:
        return blocks[-1][1].rstrip() + "\n"
    return text.strip() + "\n"
