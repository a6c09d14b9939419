"""Exports of a sweep's stored results to other tools (``harness export DIR --to ...``).

Like the report, an exporter reads stored results only (``harness.results``):
it runs on a folder copied from another machine and never imports the code
that trained it. Each target's client library is an optional extra, imported
when the export runs.
"""
