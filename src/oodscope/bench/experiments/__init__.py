"""oodscope's experiments, one module each (:class:`oodscope.bench.experiment.Experiment`):
``grid`` (a plain grid), ``paper_suites`` (the paper's Tables 2-3 and Figs. 4-5),
``family_suites`` (the classifier and calibration suites), ``robustness``, ``verification`` and
``stress``. Each registers itself on import; :func:`oodscope.bench.experiment.experiments`
imports them all."""
