"""oodscope: out-of-distribution and anomaly detection for images.

Layers, lowest first (nothing lower imports anything higher):
``data`` -> ``protocols`` -> ``transforms``/``nets`` -> ``detectors`` -> ``metrics`` -> ``pipeline``
-> ``export`` -> ``serve`` / ``bench`` -> ``figures`` -> ``report``/``cli``. Under all of them: ``errors``, ``atomic``,
``progress`` and ``results`` (the torch-free results schema, log, score files and tables).
"""

__version__ = "0.1.0"
