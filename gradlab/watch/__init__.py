"""Layer 6, watch: per-step gradients of the recurrent layers inside any model, in the user's own
training loop.

``gradlab.watch(model, every=N)`` finds every torch ``nn.RNN``/``nn.LSTM``/``nn.GRU`` and gradlab
model inside a module and, on the first backward pass and every N-th after it, records each of
them with the engine's :class:`~gradlab.engine.record.Recorder` (a gradlab copy sharing the
module's parameters, so the user's gradients are unchanged); other steps run torch's fused kernels
untouched. The handle is a context manager and removes every hook it placed.
"""
