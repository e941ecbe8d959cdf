"""Calibration of a classifier's confidence (Takahashi, "Deep learning: reliability of inference",
University of Aizu lecture notes, n.d.): the expected calibration error, the reliability diagram's
bins, the negative log-likelihood, temperature scaling (Guo, Pleiss, Sun & Weinberger, "On
calibration of modern neural networks", ICML 2017), and the uncertainty scores of several predictive
distributions (ensembles, MC dropout)."""

from oodscope.calibration.ece import BINS, ReliabilityBins, expected_calibration_error, negative_log_likelihood, reliability_bins
from oodscope.calibration.temperature import TemperatureScaler
from oodscope.calibration.uncertainty import SCORES, pooled_outputs, uncertainty_scores

__all__ = ["BINS", "SCORES", "ReliabilityBins", "TemperatureScaler", "expected_calibration_error",
           "negative_log_likelihood", "pooled_outputs", "reliability_bins", "uncertainty_scores"]
