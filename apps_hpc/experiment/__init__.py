"""An experiment as stages: the stage registry (`registry`) and the experiment → stage
config mapping (`stage_configs`) that the CLI, `submit` and the job on the node share."""
