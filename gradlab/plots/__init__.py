"""Figures drawn from stored results (never from a model); one module per family."""
