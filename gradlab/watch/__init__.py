"""Layer 6, watch: per-step gradients of the recurrent layers inside any model, in the user's own
training loop.

``gradlab.watch(model, every=N)`` finds every torch ``nn.RNN``/``nn.LSTM``/``nn.GRU`` and gradlab
model inside a module and, on the first backward pass and every N-th after it, records each of
them from the gradients its backward pass brings to the module's outputs
(:func:`~gradlab.engine.record.trace_of_run`): the forward and backward run as without gradlab, so
the user's gradients are unchanged (with ``backward="gradlab"`` the recorded sweep is the module's
backward pass instead: ``backward.py``); other steps are not touched at all. The handle is a context manager and removes every hook it placed.
"""
