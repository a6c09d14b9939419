"""Convergence reports (being built)."""
