"""The plugin API: hook specs, the spec types plugins register, the loader and cache helpers.

This layer imports nothing of the engine: a plugin depends on it alone."""
