"""Tools around the pipeline: `doctor`, `demo`, `gpu_check` (make gpu-check), `tiny_model`."""
