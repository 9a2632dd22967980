"""The train stage: the LlamaFactory YAML and DeepSpeed JSON, then `llamafactory-cli train`.

`train(cfg)` in `stage.py` is the entry point."""
