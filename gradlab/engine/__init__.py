"""Layer 3, engine: the per-step gradients of a model, recorded in one :class:`Trace`.

One engine (``bptt.py``): the forward tapes (``forward.py``: each architecture's compiled forward
sweep, or torch's fused forward layer by layer with the tape rebuilt from its states, ``fused.py``),
then the layers' hand-derived backward sweeps, top down (``layers.py``, plain or log domain).
``bptt`` returns everything including parameter gradients; ``record`` runs it in one pass for a
loss function (autograd only for ∂L/∂output); ``trace_of_run`` (what ``gradlab.watch`` uses) for a
forward that already ran; ``checkpointed_norms`` runs the log-domain pass over sequences of any length in
√T memory, and ``reference.autograd_reference`` is the autograd twin the tests and
``gradlab verify`` compare against. Imports only ``gradlab.models`` and ``gradlab.common``.
"""
