"""Stored results: the long-format schema, the per-cell Parquet store and the manifest."""
