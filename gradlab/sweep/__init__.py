"""Layer 9, sweep — ``gradlab sweep``: seeds × settings of analyze or train as independent tasks on
Dask distributed (a LocalCluster, or any scheduler), with means and 95 % intervals per setting.

``spec`` turns the flags into tasks, ``tasks`` checks and runs one (on a worker), ``run`` drives
Dask and writes the sweep directory, ``aggregate`` and ``summary`` make its table and figures.
"""
