"""Deprecated: moved to ``harness.plugin.loader``; this alias goes in the next release."""
from harness._moved import forward

__getattr__ = forward("harness.registry", ['harness.plugin.loader'])
