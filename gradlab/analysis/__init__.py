"""Layer 4, analysis: from traces and models to the numbers a reader wants.

Pure functions of a :class:`~gradlab.Trace` or a model: the decay profile, fitted factor and
horizon (``metrics``), theory's predictions (Pascanu's bound, Lyapunov exponents, forget-gate
products: ``theory``, ``predictions``), Jacobian spectra, and the two pipelines that compose them
with a task — ``pipeline.analyze`` (what ``gradlab analyze`` computes) and
``verification.verify`` (the engine against autograd). Writes no files, draws nothing.
"""
