"""Temperature scaling (Guo, Pleiss, Sun & Weinberger, "On calibration of modern neural networks",
ICML 2017; Takahashi's lecture notes "Deep learning: reliability of inference", University of
Aizu, n.d.): one scalar T > 0 divides every logit,

    y_k = exp(u_k / T) / sum_j exp(u_j / T),

chosen to minimise the negative log-likelihood of held-out (validation) images' labels. It leaves
the arg-max, hence the accuracy, unchanged; T > 1 softens an over-confident classifier. T is
fitted on log T (so it stays positive) with L-BFGS, in float64.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from oodscope.errors import InputError


class TemperatureScaler:
    """``fit(logits, labels) -> self``; ``temperature``; ``probabilities(logits)``."""

    def __init__(self, max_iter: int = 200) -> None:
        self.max_iter = max_iter
        self.temperature: float | None = None

    def fit(self, logits: np.ndarray, labels: np.ndarray) -> TemperatureScaler:
        """T minimising the mean NLL of ``labels`` under softmax(``logits`` / T).

        Raises:
            InputError: empty or non-finite logits, or labels that do not match them.
        """
        z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
        y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if z.ndim != 2 or z.shape[0] == 0 or not torch.isfinite(z).all():
            raise InputError(f"logits must be a non-empty finite (N, K) array, got shape {tuple(z.shape)}")
        if y.shape != (z.shape[0],) or (y < 0).any() or (y >= z.shape[1]).any():
            raise InputError(f"labels must be N={z.shape[0]} class indices in [0, {z.shape[1]})")
        log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=self.max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(z / log_t.exp(), y)
            loss.backward()
            return loss

        opt.step(closure)
        self.temperature = float(log_t.detach().exp())
        return self

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """softmax(logits / T), float64."""
        if self.temperature is None:
            raise InputError("temperature scaler is not fitted; call fit() first")
        z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
        return torch.softmax(z / self.temperature, dim=1).numpy()
