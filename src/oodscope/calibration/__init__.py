"""Calibration of a classifier's confidence (seed 002, lecture notes on uncertainty): the expected
calibration error, the reliability diagram's bins, the negative log-likelihood, and temperature
scaling (Guo, Pleiss, Sun & Weinberger, "On calibration of modern neural networks", ICML 2017)."""

from oodscope.calibration.ece import BINS, ReliabilityBins, expected_calibration_error, negative_log_likelihood, reliability_bins
from oodscope.calibration.temperature import TemperatureScaler

__all__ = ["BINS", "ReliabilityBins", "TemperatureScaler", "expected_calibration_error", "negative_log_likelihood",
           "reliability_bins"]
