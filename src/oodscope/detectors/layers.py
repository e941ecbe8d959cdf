"""The intermediate-layer detector of Okamoto, Suzuki & Matsuo (2021), "Semi-supervised
out-of-distribution detection using the output of intermediate layers in deep neural networks".

f is a GEOM network (:class:`~oodscope.upstream.geom_net.GeomNet`, shared with ``geom``),
frozen after its training. A small network g_theta
(``LayerHead``, Table 1) reads the taps z_1..z_L of f on a transformed image T_y(x) and is
trained with binary cross-entropy to output d=0 on in-distribution images and d=1 on the few
known outliers, with a random transformation y per sample (Algorithm 1). The score of x is
sum_y sigmoid(g_theta(z_1^y, ..., z_L^y)): higher = more out-of-distribution.

With a few outliers, g_theta separates them from the in-distribution images by whatever cue is
cheapest; out-of-distribution images that lack that cue then score as in-distribution, even where
f (GEOM's score) knew better. So by default (``f_weight`` > 0) the score keeps f's evidence:
g_theta is trained on 90 % of the in-distribution images; the held-out rest (``holdout``, at least
2 images) gives the mean and standard deviation of GEOM's score s_f(x) = -sum_y softmax_y(f(T_y x))
and of g_theta's summed logit s_g(x) = sum_y g_theta(z^y) on unseen in-distribution images, and

    s(x) = f_weight * (s_f(x) - mu_f) / sigma_f + (s_g(x) - mu_g) / sigma_g.

This is oodscope's addition, measured in docs/lab/BENCHMARKS.md (section "Keeping layers above its own
f"); ``f_weight = 0`` and ``knn_weight = 0`` (the ``paper`` preset) give the paper's score.

Both f's and g_theta's evidence can miss what an outlier-free nearest-neighbour rule sees (GEOM is
blind where a class looks like its own rotations; g_theta where the known outliers are all of one
kind). So by default a third standardised part is added with weight ``knn_weight``: the distance
d_k(x) to the ``knn_k``-th nearest of (at most ``knn_bank``) training images of g_theta in f's own
feature space - the tap ``knn_tap`` (z2, the middle block, averaged over 2 x 2 cells: ``knn_pool``)
under every transformation, each unit-normalised, concatenated and normalised again (deep nearest
neighbours, Sun et al., ICML 2022, on GEOM's features). It comes from the same pass of f:
s(x) = f_weight * z_f + z_g + knn_weight * z_knn (docs/lab/BENCHMARKS.md, "A nearest-neighbour distance
in f's features"; z2 rather than the last block z4, which is as blind as GEOM to letters that look
like their own rotations: "Which of f's features the kNN reads").

Where the known outliers are all of one cheap kind (noise, say), g_theta learns "is noise" and is
at chance on real images. So by default g_theta also trains against ``g_generic`` generated
pen strokes and as many Gaussian blobs (:func:`oodscope.data.synthetic.generate`, converted to the
images' size and channels) beside the user's outliers: it cannot win on one cheap cue alone
(docs/lab/BENCHMARKS.md, "Generic outliers beside the user's"; the ``paper`` preset adds none).

``taps`` selects the inputs of g_theta, so the ablations of Table 2 (softmax, z4, z3, z2, z1,
all) are this same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from oodscope.data import convert
from oodscope.data.synthetic import generate
from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.upstream.graph import TransformSum
from oodscope.upstream.geom_net import GEOM_CHOICES, GEOM_DEFAULTS, GEOM_PRESETS, GeomNet
from oodscope.detectors.registry import register
from oodscope.training.core import (HEAD_DEFAULTS, HEAD_HELP, HEAD_PRESETS, merge_presets, sum_over_transforms,
                                    train_bce_head)
from oodscope.errors import InputError
from oodscope.nets import LayerHead, NeighbourBank
from oodscope.nets.neighbour_bank import grid_pool
from oodscope.transforms.augment import random_affine

TAP_CHOICES = ("z1", "z2", "z3", "z4", "softmax", "ptrue")
KNN_TAPS = ("z1", "z2", "z3", "z4")

LAYERS_DEFAULTS: dict[str, Any] = {
    **GEOM_DEFAULTS,
    "taps": ["z3", "z4", "ptrue"],
    **HEAD_DEFAULTS,
    "g_mixup": 0.0,  # off: no gain (docs/lab/BENCHMARKS.md)
    "g_augment": "outliers",
    "f_weight": 0.5,
    "holdout": 0.1,
    "g_generic": 16,
    "knn_weight": 1.0,
    "knn_k": 5,
    "knn_bank": 4096,
    "knn_tap": "z2",
    "knn_pool": 2,
}

# One line per setting beyond f's (GEOM_HELP, read from the upstream network).
LAYERS_HELP: dict[str, str] = {
    "taps": "inputs of g_theta: f's taps z1-z4, softmax (f's output), ptrue (log p of the applied T); paper: z1-z4",
    **HEAD_HELP,
    "g_mixup": "fraction of each batch of g_theta replaced by ID/outlier mixtures with soft labels",
    "g_augment": 'random affine distortion of the images drawn for g_theta: "none", "outliers" or "both"',
    "f_weight": "weight of f's standardised GEOM score added to g's (0: g alone, the paper's score)",
    "holdout": "fraction of in-distribution images kept from g (and the kNN bank) to standardise the scores",
    "g_generic": "generated pen strokes, and as many blobs, added to the known outliers g_theta trains on",
    "knn_weight": "weight of the standardised distance to the knn_k-th nearest training image in f's features (0: off)",
    "knn_k": "k: the distance to the k-th nearest bank image",
    "knn_bank": "at most this many training images (a random subset of g's) are kept as neighbours",
    "knn_tap": "the tap of f the distance is measured in, under every transformation (z1-z3: maps, pooled)",
    "knn_pool": "a feature map of knn_tap is averaged over knn_pool x knn_pool cells",
}

# The paper preset keeps the paper's g_theta: all four taps, no outlier augmentation, no mixup.
LAYERS_PRESETS = merge_presets(GEOM_PRESETS, HEAD_PRESETS, {
    "paper": {"taps": ["z1", "z2", "z3", "z4"], "g_mixup": 0.0, "g_augment": "none", "f_weight": 0.0, "g_generic": 0,
              "knn_weight": 0.0},
})


@register
class LayersDetector(Detector):
    method = "layers"
    paper = ('Okamoto, Suzuki & Matsuo, "Semi-supervised out-of-distribution detection using the output of '
             'intermediate layers in deep neural networks", 2021')
    help = LAYERS_HELP
    requires = Requires(outliers=True, upstream=GeomNet)
    defaults = LAYERS_DEFAULTS
    choices = {**GEOM_CHOICES, "g_augment": ("none", "outliers", "both")}
    presets = LAYERS_PRESETS
    order = 40
    saved_defaults = {"f_weight": 0.0, "g_generic": 0, "knn_weight": 0.0, "knn_tap": "z4"}  # what models saved before these settings were fitted with

    def _check_config(self) -> None:
        bad = [t for t in self.config["taps"] if t not in TAP_CHOICES]
        if bad or not self.config["taps"]:
            raise InputError(f"layers: taps must be a non-empty subset of {TAP_CHOICES}, got {self.config['taps']}")
        if not 0.0 <= self.config["g_mixup"] <= 1.0:
            raise InputError(f"layers: g_mixup must be in [0, 1], got {self.config['g_mixup']}")
        if self.config["f_weight"] < 0:
            raise InputError(f"layers: f_weight must be >= 0, got {self.config['f_weight']}")
        if not 0.0 < self.config["holdout"] < 1.0:
            raise InputError(f"layers: holdout must be in (0, 1), got {self.config['holdout']}")
        if self.config["g_generic"] < 0:
            raise InputError(f"layers: g_generic must be >= 0, got {self.config['g_generic']}")
        if self.config["knn_weight"] < 0:
            raise InputError(f"layers: knn_weight must be >= 0, got {self.config['knn_weight']}")
        if self.config["knn_tap"] not in KNN_TAPS:
            raise InputError(f"layers: knn_tap must be one of {KNN_TAPS}, got {self.config['knn_tap']!r}")
        if self.config["knn_pool"] < 1:
            raise InputError(f"layers: knn_pool must be >= 1, got {self.config['knn_pool']}")
        if not 1 <= self.config["knn_k"] <= self.config["knn_bank"]:
            raise InputError(f"layers: need 1 <= knn_k <= knn_bank, got knn_k={self.config['knn_k']}, "
                             f"knn_bank={self.config['knn_bank']}")

    @property
    def paper_score(self) -> bool:
        """True when the score is the paper's sum of sigmoids (no f or kNN evidence combined)."""
        return not self.config["f_weight"] and not self.config["knn_weight"]

    @property
    def base(self) -> GeomNet:
        """f, the GEOM network whose taps g_theta reads."""
        return self.upstream

    # -- construction ----------------------------------------------------------------------
    def _build(self) -> None:
        self.device = self.base.device
        with torch.no_grad():
            probe = torch.zeros(2, self.fitted["channels"], *self.fitted["size"], device=self.device)
            self.base.net.eval()
            y0 = torch.zeros(2, dtype=torch.long, device=self.device)
            taps = self.base.taps(probe)
            shapes = {k: tuple(v.shape[1:]) for k, v in self._features(probe, y0, taps).items()}
            self._knn_dim = int(grid_pool(taps[self.config["knn_tap"]], int(self.config["knn_pool"])).shape[1])
        c = self.config
        torch.manual_seed(int(c["seed"]) + 2)  # same g_theta initialisation whether f is shared or not
        self.head = LayerHead(shapes, c["head_width"], c["head_hidden"], c["head_dropout"]).to(self.device)
        n_bank = self.fitted.get("knn_bank")
        self.bank = None if n_bank is None else self._new_bank(n_bank)

    def _new_bank(self, n: int) -> NeighbourBank:
        return NeighbourBank(len(self.base.transforms), n, self._knn_dim, int(self.config["knn_pool"])).to(self.device)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"g": self.head, **({"knn": self.bank} if self.bank is not None else {})}

    def _features(self, xt: torch.Tensor, y: torch.Tensor | int,
                  taps: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The selected taps of f on the transformed batch ``xt``; ``y`` holds the applied transformations
        (one per image, or one index for the whole batch).

        ``softmax`` is f's predicted distribution over transformations; ``ptrue`` is the log-probability
        f gives the transformation actually applied (the per-transformation term of GEOM's score).
        ``taps``: f's taps on ``xt`` when already computed.
        """
        taps = self.base.taps(xt) if taps is None else taps
        feats = {}
        for t in self.config["taps"]:
            if t == "softmax":
                feats[t] = torch.softmax(taps["logits"].float(), dim=1)
            elif t == "ptrue":
                logp = torch.log_softmax(taps["logits"].float(), dim=1)
                feats[t] = logp[:, y: y + 1] if isinstance(y, int) else logp.gather(1, y.view(-1, 1))
            else:
                feats[t] = taps[t].float()
        return feats

    # -- training --------------------------------------------------------------------------
    def _outliers(self, known: torch.Tensor) -> torch.Tensor:
        """The known outliers, plus ``g_generic`` generated strokes and as many blobs in their size
        and channels (:func:`oodscope.data.synthetic.generate`)."""
        n = int(self.config["g_generic"])
        if not n:
            return known
        c, h, w = known.shape[1:]
        made = [convert(generate(kind, n, int(self.config["seed"])), (h, w), c) for kind in ("strokes", "blobs")]
        return torch.cat([known, torch.from_numpy(np.concatenate(made)).float().div_(255)])

    def _fit(self, data: FitData) -> None:
        self.base.net.eval()
        outliers = self._outliers(data.outliers)
        if self.paper_score:
            self._train_head(data.x, outliers)
            return
        n = data.x.shape[0]
        n_held = max(2, int(round(self.config["holdout"] * n)))
        if n - n_held < 2:
            raise InputError(f"layers: {n} in-distribution images are too few to hold out {n_held} of them for "
                             "standardising the scores and train g on the rest; pass more images or "
                             "f_weight=0, knn_weight=0")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(self.config["seed"]) + 3))
        rest = data.x[perm[n_held:]]
        if self.config["knn_weight"] and len(rest) < self.config["knn_k"]:
            raise InputError(f"layers: {len(rest)} training images are too few for knn_k={self.config['knn_k']} "
                             "neighbours; pass more images, a smaller knn_k or knn_weight=0")
        self._train_head(rest, outliers)
        if self.config["knn_weight"]:
            self._fill_bank(rest)
        sums = self._sums(data.x[perm[:n_held]])
        mean, std = sums.mean(axis=0), sums.std(axis=0)
        # a few near-identical held-out images give a spread of rounding size, which would magnify
        # float rounding (and batch-size effects) into the score: floor it at 1e-3 of the part's scale
        std = np.maximum(std, 1e-3 * np.sqrt(mean ** 2 + std ** 2))
        self.fitted["standardise"] = {"mean": mean.tolist(), "std": std.tolist()}

    def _train_head(self, x: torch.Tensor, o: torch.Tensor) -> None:
        c = self.config
        g = torch.Generator().manual_seed(int(c["seed"]) + 1)
        torch.manual_seed(int(c["seed"]) + 1)
        k, half = len(self.base.transforms), int(c["g_batch"]) // 2
        n_mix = int(round(c["g_mixup"] * 2 * half))

        def draw() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            xi = torch.randint(0, x.shape[0], (half,), generator=g)
            oi = torch.randint(0, o.shape[0], (half,), generator=g)
            xb = torch.cat([self.base.augment(x[xi], g), o[oi]])
            if c["g_augment"] == "both":
                xb = random_affine(xb, g)
            elif c["g_augment"] == "outliers":
                xb[half:] = random_affine(xb[half:], g)
            d = torch.cat([torch.zeros(half), torch.ones(half)])
            if n_mix:
                lam = torch.rand(n_mix, generator=g)
                a = x[torch.randint(0, x.shape[0], (n_mix,), generator=g)]
                b = o[torch.randint(0, o.shape[0], (n_mix,), generator=g)]
                xb[:n_mix] = (1 - lam.view(-1, 1, 1, 1)) * a + lam.view(-1, 1, 1, 1) * b
                d[:n_mix] = lam
            xb, d = self.base.normalize(xb).to(self.device), d.to(self.device)
            y = torch.randint(0, k, (2 * half,), generator=g).to(self.device)
            return self._features(self.base.transforms.apply(xb, y), y), d

        train_bce_head(self.head, draw, c, "layers: training g")

    def _fill_bank(self, x: torch.Tensor) -> None:
        """f's ``knn_tap`` of at most ``knn_bank`` of the images ``x`` (a random subset), under every
        transformation, as the reference features of the kNN distance."""
        n = min(int(self.config["knn_bank"]), x.shape[0])
        pick = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(int(self.config["seed"]) + 4))[:n]
        self.fitted["knn_bank"] = n
        self.bank = self._new_bank(n)
        bs, chosen = 4 * int(self.config["batch_size"]), x[pick.sort().values]
        for i in range(0, n, bs):
            xb = self.base.normalize(chosen[i:i + bs]).to(self.device)
            for k in range(len(self.base.transforms)):
                z = self.base.taps(self.base.transforms.one(xb, k), (self.config["knn_tap"],))[self.config["knn_tap"]]
                self.bank.features[k, i:i + bs] = self.bank.embed(z)

    # -- scoring ---------------------------------------------------------------------------
    def _needed_taps(self) -> tuple[str, ...]:
        """The taps of f that :meth:`_term` reads: g_theta's, the logits and (when on) the kNN's."""
        maps = [t for t in self.config["taps"] if t in KNN_TAPS]
        return tuple(dict.fromkeys([*maps, "logits", *([self.config["knn_tap"]] if self.bank is not None else [])]))

    def _weights(self) -> list[float]:
        """The weights of the standardised columns of :meth:`_sums`: f's, g's and (when on) the kNN's."""
        w = [float(self.config["f_weight"]), 1.0]
        return w + [float(self.config["knn_weight"])] if self.bank is not None else w

    def _score(self, x: torch.Tensor) -> np.ndarray:
        if self.paper_score:
            return self._sums(x)
        st = self.fitted["standardise"]
        z = (self._sums(x) - np.asarray(st["mean"])) / np.maximum(np.asarray(st["std"]), 1e-12)
        return z @ np.asarray(self._weights())

    def _term(self, parts: dict[str, torch.nn.Module], xt: torch.Tensor, k: int,
              taps: dict[str, torch.Tensor]) -> torch.Tensor:
        """One transformation's share of the sums: sigmoid(g) for the paper's score; otherwise the
        row (-softmax_k(f), g's logit, the cosines to the bank's images when the kNN is on)."""
        g = parts["g"](self._features(xt, k, taps)).float()
        if self.paper_score:
            return torch.sigmoid(g)
        cols = torch.stack([-torch.softmax(taps["logits"].float(), dim=1)[:, k], g], dim=1)
        if "knn" not in parts:
            return cols
        return torch.cat([cols, parts["knn"].similarity(taps[self.config["knn_tap"]], k)], dim=1)

    def _reduce(self, total: torch.Tensor) -> torch.Tensor:
        """The summed rows of :meth:`_term` with the cosines turned into the kNN distance."""
        if self.bank is None:
            return total
        return torch.cat([total[:, :2], self.bank.distance(total[:, 2:], int(self.config["knn_k"]))[:, None]], dim=1)

    def _graph(self) -> torch.nn.Module:
        """The score of :meth:`_score` as one module: per transformation, f's taps feed g_theta (and
        the kNN's cosines), and the sums are combined as above."""
        parts = {"f": self.base.net, **self._modules()}
        st = self.fitted.get("standardise")
        post = None
        if not self.paper_score and st:
            mean = torch.tensor(st["mean"], dtype=torch.float64)  # float64 as in _score
            std = torch.tensor(st["std"], dtype=torch.float64).clamp_min(1e-12)
            weights = torch.tensor(self._weights(), dtype=torch.float64)

            def post(total: torch.Tensor) -> torch.Tensor:
                return ((self._reduce(total).double() - mean) / std) @ weights

        return TransformSum(parts, self.base.transforms, self.base.fitted,
                            lambda p, xt, k: self._term(p, xt, k, p["f"].taps(xt)), post)

    def _sums(self, x: torch.Tensor) -> np.ndarray:
        """For the paper's score, sum_y sigmoid(g(z^y)) per image; otherwise one row per image of
        (GEOM's score -sum_y softmax_y(f(T_y x)), g's summed logit sum_y g(z^y)[, the distance to the
        knn_k-th nearest bank image in f's ``knn_tap`` under all transformations]), from one pass of f."""
        self.base.net.eval()
        self.head.eval()
        parts = self._modules()
        need = self._needed_taps()

        def term(xt: torch.Tensor, k: int) -> torch.Tensor:
            return self._term(parts, xt, k, self.base.taps(xt, need))

        bs = 4 * int(self.config["batch_size"])
        return sum_over_transforms(x, self.base.normalize, self.device, self.base.transforms, bs, term, self._reduce)
