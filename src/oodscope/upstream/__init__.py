"""Networks that several detectors read, trained once and shared: the upstream base and its cache
(:mod:`~oodscope.upstream.base`), GEOM's network f (:mod:`~oodscope.upstream.geom_net`), a
multi-class classifier (:mod:`~oodscope.upstream.classifier`), a deep ensemble of classifiers
(:mod:`~oodscope.upstream.ensemble_net`), the memory of a frozen network's taps
(:mod:`~oodscope.upstream.tap_memo`), the traceable score graphs used for export
(:mod:`~oodscope.upstream.graph`) and a model of yours (:mod:`~oodscope.upstream.adapter`, an ONNX
one in :mod:`~oodscope.upstream.onnx_model`, whose reader registers itself here). Detectors
(:mod:`oodscope.detectors`) build on these; nothing here imports a detector."""

from __future__ import annotations

from oodscope.upstream import onnx_model  # noqa: F401  (registers the .onnx reader of ModelAdapter.from_file)
from oodscope.upstream.base import Upstream, UpstreamCache, UpstreamInfo, default_cache_dir

__all__ = ["Upstream", "UpstreamCache", "UpstreamInfo", "default_cache_dir"]
