"""Deprecated: moved to ``harness.plugin.specs``, ``harness.learning.runconfig``, ``harness.learning.split``; this alias goes in the next release."""
from harness._moved import forward

__getattr__ = forward("harness.contracts", ['harness.plugin.specs', 'harness.learning.runconfig', 'harness.learning.split'])
