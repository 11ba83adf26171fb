"""Layer 1, models: what a recurrent network computes.

One :class:`~gradlab.models.architectures.Architecture` per recurrence (its step, tape, backward
sweep, local derivatives and step Jacobian, written once), the torch-compatible modules that loop
them over time with hook points (``recurrent.py``), the input layouts at the boundary, the
converters to and from torch and the course layouts, and the initialisations that choose a
regime. Imports nothing from the rest of gradlab but ``gradlab.common``.
"""
