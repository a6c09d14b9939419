"""Deprecated: moved to ``harness.plugin.hookspecs``; this alias goes in the next release."""
from harness._moved import forward

__getattr__ = forward("harness.hookspecs", ['harness.plugin.hookspecs'])
