"""Sweeps: configuration, plan, runner and executor (config -> plan -> run -> results)."""
