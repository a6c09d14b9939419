"""Built-in plugins, installed as ``harness_plugins`` and loaded through the same
``harness.plugins`` entry points as any third-party package."""
