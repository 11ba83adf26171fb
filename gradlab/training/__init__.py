"""Layer 7, training: a model trained on a task, its gradients watched along the way.

``loop.train`` (the NNDL book's settings by default, :class:`TrainConfig`), scoring on the dev and
test sets, and the clipping modes. Writes no files: ``gradlab.runs`` writes a training run.
"""
