"""What ran and from what: the records' provenance stamps (`stamps`), `manifest.json`
(`manifest`), what ran each stage (`identity`) and the experiment.yaml check (`resolved`)."""
