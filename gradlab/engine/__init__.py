"""Layer 3, engine: the per-step gradients of a model, recorded in one :class:`Trace`.

``bptt`` runs the hand-derived backward pass (plain or log domain) of every architecture,
``record`` runs autograd with a tensor hook on every state (and the log-domain pass for exact
log10 norms), ``checkpointed_norms`` runs the log-domain pass over sequences of any length in
√T memory, and ``reference.autograd_reference`` is the autograd twin the tests and
``gradlab verify`` compare against. Imports only ``gradlab.models`` and ``gradlab.common``.
"""
