"""Deprecated: moved to ``harness.plugin.cache``, ``harness.learning.split``; this alias goes in the next release."""
from harness._moved import forward

__getattr__ = forward("harness.data", ['harness.plugin.cache', 'harness.learning.split'])
