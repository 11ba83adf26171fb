"""Layer 10, report — ``gradlab report``: saved runs (analyze, train, watch run directories) turned
into figures (PNG, PDF, each with a JSON sidecar of the numbers drawn) and one self-contained HTML
page. Everything is read from the files the runs wrote; nothing here holds a model.

``sources`` reads a run directory, ``figures`` chooses and draws its figures, ``tables`` its summary
rows, ``page`` writes the HTML, ``build`` puts them into a fresh report directory.
"""
