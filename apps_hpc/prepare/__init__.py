"""The prepare stage: APPS rows → the LlamaFactory dataset and the sampling prompts.

`prepare(cfg)` in `stage.py` is the entry point; `stats.py` describes the dataset."""
