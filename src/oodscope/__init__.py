"""oodscope: out-of-distribution and anomaly detection for images.

Layers, lowest first (nothing lower imports anything higher):
``data`` -> ``protocols`` -> ``transforms``/``nets`` -> ``detectors`` -> ``metrics`` -> ``bench`` -> ``report``/``cli``.
"""

__version__ = "0.1.0"
