"""Threshold-free and threshold metrics for OOD scores (higher score = more out-of-distribution)."""

from oodscope.metrics.ood import (
    auroc,
    aupr_in,
    aupr_out,
    classification_accuracy,
    evaluate,
    fpr_at_tpr,
    threshold_at_acceptance,
    threshold_at_outlier_acceptance,
)

__all__ = ["auroc", "aupr_in", "aupr_out", "classification_accuracy", "evaluate", "fpr_at_tpr", "threshold_at_acceptance",
           "threshold_at_outlier_acceptance"]
