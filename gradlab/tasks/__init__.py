"""Synthetic sequence tasks, generated offline from a seed."""
