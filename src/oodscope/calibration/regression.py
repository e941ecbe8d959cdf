"""Predictive uncertainty of a regression network (Takahashi, "Deep learning: reliability of
inference", University of Aizu lecture notes, n.d., figs. 8.1 and 8.2): aleatoric (noise in the
data) versus epistemic (lack of knowledge) uncertainty.

* The toy problem of the notes: ``y = sin(x) + eps``, ``eps ~ N(0, 0.005 x^2)`` (noise standard
  deviation ``sqrt(0.005) |x| ~ 0.0707 |x|``), observed only for ``0 < x < 2 pi`` (:func:`toy_data`).
* A mean-variance network (Nix & Weigend, "Estimating the mean and variance of the target
  probability distribution", ICNN 1994): a small MLP ``x -> (mu(x), s(x))`` with
  ``s = log sigma^2``, trained by the Gaussian negative log-likelihood
  ``1/2 (exp(-s) (y - mu)^2 + s)`` (:func:`gaussian_nll`, :func:`fit_regressor`). Its ``sigma^2``
  is the aleatoric uncertainty; one network alone has no idea where it has seen no data.
* A deep ensemble (Lakshminarayanan, Pritzel & Blundell, "Simple and scalable predictive
  uncertainty estimation using deep ensembles", NeurIPS 2017): M such networks differing only in
  their seed; their equally weighted Gaussian mixture has mean ``mu* = mean_i mu_i`` and variance
  ``mean_i sigma_i^2 + (mean_i mu_i^2 - mu*^2)``, the first term aleatoric, the second (the members'
  disagreement) epistemic, as separated by Kendall & Gal, "What uncertainties do we need in
  Bayesian deep learning for computer vision?", NeurIPS 2017 (:func:`ensemble_predict`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

NOISE_VAR_COEF = 0.005  # Var[eps | x] = 0.005 x^2
S_MIN, S_MAX = -12.0, 6.0  # s = log sigma^2 is clamped to this range (sigma from 0.0025 to 20)


def noise_std(x: np.ndarray) -> np.ndarray:
    """The toy problem's true noise standard deviation at ``x``: ``sqrt(0.005) |x|``."""
    return math.sqrt(NOISE_VAR_COEF) * np.abs(np.asarray(x, dtype=np.float64))


def toy_data(n: int, low: float = 0.0, high: float = 2 * math.pi, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points ``x ~ U(low, high)``, ``y = sin(x) + N(0, 0.005 x^2)``; float64 arrays of shape (n,)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, size=n)
    y = np.sin(x) + noise_std(x) * rng.standard_normal(n)
    return x, y


class MeanVarianceNet(nn.Module):
    """``1 -> hidden -> hidden -> 2`` MLP giving ``(mu, s = log sigma^2)``, each of shape (N,).

    The input is standardised with ``x_center`` and ``x_scale`` (buffers, set from the training
    inputs by :func:`fit_regressor`); ``s`` is clamped to [S_MIN, S_MAX].
    """

    def __init__(self, hidden: int = 64, activation: str = "relu") -> None:
        super().__init__()
        act: type[nn.Module] = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        self.body = nn.Sequential(nn.Linear(1, hidden), act(), nn.Linear(hidden, hidden), act(), nn.Linear(hidden, 2))
        self.register_buffer("x_center", torch.zeros(()))
        self.register_buffer("x_scale", torch.ones(()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.body(((x - self.x_center) / self.x_scale).reshape(-1, 1))
        return out[:, 0], out[:, 1].clamp(S_MIN, S_MAX)


def gaussian_nll(mu: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean of ``1/2 (exp(-s) (y - mu)^2 + s)``: the negative log-density of ``y`` under
    ``N(mu, exp(s))`` without its constant ``1/2 log(2 pi)``."""
    return 0.5 * (torch.exp(-s) * (y - mu) ** 2 + s).mean()


def fit_regressor(x: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 2000, lr: float = 3e-3,
                  hidden: int = 64, activation: str = "relu", batch_size: int | None = None,
                  weight_decay: float = 0.0) -> MeanVarianceNet:
    """A :class:`MeanVarianceNet` trained on ``(x, y)`` by Adam on :func:`gaussian_nll`.

    ``batch_size`` None trains full-batch (one step per epoch); otherwise shuffled mini-batches.
    ``seed`` sets the initial weights and the batch order, nothing else.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = MeanVarianceNet(hidden, activation)
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float32).reshape(-1)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.float32).reshape(-1)
    net.x_center.fill_(xt.mean())
    net.x_scale.fill_(xt.std().clamp_min(1e-8))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=lr / 20)
    n = len(xt)
    bs = n if batch_size is None else min(batch_size, n)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=g) if bs < n else None
        for start in range(0, n, bs):
            idx = order[start:start + bs] if order is not None else slice(None)
            mu, s = net(xt[idx])
            loss = gaussian_nll(mu, s, yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    return net.eval()


@torch.no_grad()
def ensemble_predict(models: list[MeanVarianceNet], x: np.ndarray) -> dict[str, np.ndarray]:
    """The members' Gaussian mixture at ``x``: ``mean`` (mu*), ``aleatoric_var`` (mean of the
    sigma_i^2), ``epistemic_var`` (mean of the mu_i^2 minus mu*^2, the members' spread), and each
    member's ``mus`` and ``vars`` (shape (M, N)); float64 arrays."""
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float32).reshape(-1)
    mus, vars_ = [], []
    for m in models:
        mu, s = m(xt)
        mus.append(mu.double().numpy())
        vars_.append(np.exp(s.double().numpy()))
    mu_arr, var_arr = np.stack(mus), np.stack(vars_)
    mean = mu_arr.mean(axis=0)
    epistemic = mu_arr.var(axis=0)  # = mean_i mu_i^2 - mu*^2, without the cancellation
    return {"mean": mean, "aleatoric_var": var_arr.mean(axis=0), "epistemic_var": epistemic,
            "mus": mu_arr, "vars": var_arr}
