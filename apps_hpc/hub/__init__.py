"""The hub folder: where a model or data set lives (`paths`) and how it gets there (`fetch`)."""
