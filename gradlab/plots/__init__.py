"""Layer 5, plots: figures drawn from stored results (profiles, fits, histories), never from a model.

One module per family of figures; ``style`` gives every figure the same look (one colour per model,
log axes labelled in powers of ten). Figures are returned, not saved: ``gradlab.common.files.save_figure``.
"""
