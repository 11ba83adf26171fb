"""Layer 8, runs: the run directories each command writes, and the text it prints.

An analyze run (trace.csv, summary.json, models.pt, batch.pt, decay.png/pdf) and a train run
(config.json, summary.json, history.csv, evals.csv, traces.csv, checkpoint.pt, training.png/pdf),
each written whole or not at all through ``gradlab.common.files``; the console table of an
analysis. Reads results; computes nothing.
"""
