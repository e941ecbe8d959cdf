"""Measurement suites with their own plan of models and measurements: robustness (adversarial
examples and training) and verification (certified accuracy, rotation certificates, coverage),
their tables, and what they share."""
