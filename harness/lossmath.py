"""Deprecated: moved to ``harness.plugin.lossmath``; this alias goes in the next release."""
from harness._moved import forward

__getattr__ = forward("harness.lossmath", ['harness.plugin.lossmath'])
