"""Thin routes, one module per noun."""
