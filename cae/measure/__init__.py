"""Measuring tools, not the library: they time, profile and compare the library, and nothing in ``cae`` imports them.

- ``benchmark``: images/s of the toolkit's graph-mode steps against Keras 3 ``model.fit`` (``cae-benchmark``,
  ``scripts/benchmark.py``), with ``keras_baseline`` (the same models written the Keras 3 way) and
  ``kernel_profile`` (per-kernel times from ``RunOptions(trace_level=FULL_TRACE)``);
- ``label_budget``: does pretraining pay off when labels are few (``cae-experiment``, ``scripts/experiment.py``),
  and ``label_budget_report``, its markdown table and plot;
- ``time_to_accuracy``: README's workflow and the from-scratch run as whole processes, timed, with ``keras_recipe``
  (the same recipe in Keras 3, one process) beside them (``scripts/time_to_accuracy.py``);
- ``summary_overhead``: what fetching the train/ summaries costs a training step (``scripts/summary_overhead.py``).

They import Keras (``keras_baseline``) and matplotlib (``label_budget_report``, ``pip install -e ".[report]"``),
which the library itself never does. Their settings are cae.config dataclasses like every command's.
"""
