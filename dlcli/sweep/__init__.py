"""Sweeps: many runs of one base config with some keys varied, each trial an ordinary run.

``spec`` validates a sweep spec (a YAML file of its own), ``generate`` draws each trial's
values (grid, random; ``tpe`` through Optuna), ``attempt`` decides how a trial (re)starts and
reads its result, ``local``/``dask_executor`` run trials as processes on this machine or on a
Dask cluster, ``driver`` ties them together into ``sweeps/<name>-<time>/``, ``display``
shows it and ``plot`` draws it.
"""
