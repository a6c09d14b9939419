"""The learning engine: run configuration, model, trainer, schedules, stopping rules,
metrics, the data split and the convex reference."""
