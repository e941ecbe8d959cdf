"""oodscope: out-of-distribution and anomaly detection for images.

Layers, lowest first (nothing lower imports anything higher):
``data`` -> ``protocols`` -> ``transforms``/``nets`` -> ``training`` -> ``upstream`` (networks several
detectors share) -> ``detectors`` -> ``metrics`` -> ``pipeline`` -> ``export`` -> ``serve`` / ``bench``
-> ``figures`` -> ``report``/``cli``. Under all of them: ``errors``, ``atomic``, ``progress``,
``precision``, ``settings``, ``inputs``, ``model_files`` and ``results`` (the torch-free results
schema, log, score files and tables).
"""

__version__ = "0.3.1"
