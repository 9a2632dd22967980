"""The core: what every stage shares and nothing above it.

Errors, logging, whole-file writes, the experiment config and its types, APPS rows, the
record formats and their JSONL I/O, the prompt, pass@k, shard planning and what a stage
reads from the scheduler's environment. Nothing here imports a stage, `launch` or the CLI.
"""
