"""Your own model as an ONNX file, scored with onnxruntime: :class:`OnnxModel`.

The post-hoc detectors read it as they read a torch model through
:class:`~oodscope.upstream.adapter.ModelAdapter` (its logits, its taps, the penultimate features
and the final linear layer's weight and bias), and the input is declared the same way
(:class:`~oodscope.upstream.adapter.Preprocess`). Nothing is converted to torch and nothing is
unpickled: the file is a protobuf that onnxruntime runs; the logits are the graph's first output.
A graph exported without a dynamic batch axis is run that many images at a time (the last batch
padded with blank images, whose outputs are dropped).

Module paths. You name the penultimate module, the head and the taps as you would for torch
(``"avgpool"``, ``"layer4"``, ``"fc"``, ``"features.7"``); each is mapped to the ONNX value that
module outputs, from what ``torch.onnx.export`` writes:

* the default (dynamo) exporter records each node's module stack in its ``metadata_props``
  (``pkg.torch.onnx.name_scopes``, e.g. ``['', 'layer4', 'layer4.bn2', 'conv2d_5']``);
* the TorchScript exporter (``dynamo=False``) names nodes by their module scope
  (``/layer4/conv2/Conv``, ``/features/features.7/Relu``): the scope names are joined into module
  paths (the exporter names a module in a container that is never called itself, an
  ``nn.ModuleList`` say, by the end of its path: such a scope is taken when parameters named
  under the module's path, ``<path>.weight``, are read there).

A module's output is the last floating-point value computed inside its scope that is read
outside it (or is an output of the graph): for a module called twice in one scope, that of its
last call, as a torch forward hook keeps (the TorchScript exporter names a second call's scope
``<name>_1``). An ONNX value name (``"/avgpool/GlobalAveragePool_output_0"``) is
accepted directly too. The values are added as outputs of an in-memory copy of the graph; the
file itself is never changed. The head's weight W (K x D) and bias b are read from the constant
inputs of the linear operation that produces its output (``Gemm``, with ``alpha``, ``beta`` and
``transB`` applied, or ``MatMul`` followed by ``Add``).

Exporters fold a batch norm into the convolution before it: the TorchScript exporter keeps the
convolution's scope name (with its weights renamed ``onnx::Conv_*``), the dynamo exporter the
batch norm's. Such a convolution's own output is not in the file, and naming it is refused rather
than answered with the batch norm's output.

What an ONNX file cannot give is refused, naming the detector: gradients with respect to the
input (the input step of ``odin`` and of ``mahalanobis`` with eps > 0, attacks), stochastic
dropout (``mc-dropout``: an exported graph keeps no dropout) and scoring in another precision
than float32. A detector fitted on an ONNX model carries the file (``model.onnx``) and a SHA-256
fingerprint of its bytes and the adapter's spec; loading it refuses another file.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oodscope.errors import InputError, ModelCapabilityError
from oodscope.training.core import batches
from oodscope.upstream.adapter import MODEL_READERS, ONNX_PROGRAM, AdapterSpec, ModelAdapter, Preprocess
from oodscope.upstream.base import Upstream

SCOPES = "pkg.torch.onnx.name_scopes"  # the dynamo exporter's module stack of a node
CONVOLUTIONS = ("Conv", "ConvTranspose")  # what exporters fold a following batch norm into
SHOWN = 30  # module or value names listed in a message


def onnx_fingerprint(data: bytes, spec: AdapterSpec) -> str:
    """SHA-256 of the ONNX file's bytes and of the adapter's spec."""
    h = hashlib.sha256(b"onnx|" + json.dumps(spec.to_json(), sort_keys=True).encode() + b"|")
    h.update(data)
    return h.hexdigest()


def no_gradients() -> ModelCapabilityError:
    """The refusal of a detector that needs the model's gradients (the detector adds its name)."""
    return ModelCapabilityError("needs the model's gradients with respect to its input (an input step, an attack), "
                                "which an ONNX model cannot give: use a .pt2 program (or, for an input step, eps=0)")


def _scopes(node: Any) -> tuple[str, ...]:
    """The module paths a node lies in, outermost first (see the module docstring)."""
    for prop in node.metadata_props:
        if prop.key == SCOPES:
            try:
                names = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return ()
            return tuple(n for n in names[:-1] if isinstance(n, str) and n)
    if not node.name.startswith("/"):
        return ()
    chain, path = [], ""
    for part in node.name.split("/")[1:-1]:
        path = part if not path or part.startswith(path + ".") else f"{path}.{part}"
        chain.append(path)
    return tuple(chain)


class OnnxGraph:
    """What the adapter needs to know of a parsed ONNX model: which node produces and which nodes
    read each value, the module paths of the nodes, the constants and the values' element types."""

    def __init__(self, model: Any, where: str) -> None:
        from onnx import numpy_helper, shape_inference

        self.where = where
        graph = model.graph
        self.nodes = list(graph.node)
        self.constants: dict[str, Any] = {t.name: t for t in graph.initializer}  # TensorProtos, converted when read
        for node in self.nodes:
            if node.op_type == "Constant" and node.output:
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    self.constants[node.output[0]] = value
        self._to_array = numpy_helper.to_array
        self.producer = {out: i for i, node in enumerate(self.nodes) for out in node.output if out}
        self.readers: dict[str, set[int]] = {}
        for i, node in enumerate(self.nodes):
            for name in node.input:
                self.readers.setdefault(name, set()).add(i)
        self.outputs = [o.name for o in graph.output]
        self.members: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for path in _scopes(node):
                self.members.setdefault(path, []).append(i)
        self.dynamo = any(p.key == SCOPES for node in self.nodes for p in node.metadata_props)
        try:  # element types of the intermediate values (shape computations are not a module's output)
            inferred = shape_inference.infer_shapes(model).graph
            infos = [*inferred.value_info, *inferred.output, *inferred.input]
            self.types = {v.name: v.type.tensor_type.elem_type for v in infos if v.type.HasField("tensor_type")}
        except Exception:  # a graph onnx cannot infer (custom operators): no filtering by type
            self.types = {}

    def array(self, name: str) -> np.ndarray | None:
        """The constant (initializer or Constant node) of this name, or None."""
        t = self.constants.get(name)
        return None if t is None else np.asarray(self._to_array(t))

    # -- module paths -----------------------------------------------------------------------
    def value(self, name: str, what: str) -> str:
        """The ONNX value module (or value) ``name`` outputs.

        Raises:
            InputError: no module or value of that name (a few candidates listed), or a convolution
                the exporter merged with a following batch norm.
        """
        nodes = self._module_nodes(name)
        if nodes:
            self._refuse_folded(name, nodes)
            found = self._escaping(nodes)
            if found is not None:
                return found
        if name in self.producer or name in self.outputs:
            return name
        modules = sorted(self.members)
        listed = modules or [v for v in self.producer if v not in self.constants]
        shown = ", ".join(listed[:SHOWN]) + (", ..." if len(listed) > SHOWN else "")
        kind = "modules" if modules else "values"
        raise InputError(f"{self.where}: {what} {name!r} matches no module or value of the ONNX model; its {kind}: "
                         f"{shown} (an ONNX value name is accepted too)")

    def _module_nodes(self, path: str) -> list[int]:
        if path in self.members:
            return self.members[path]
        if self.dynamo:
            return []
        # the TorchScript exporter names a module inside a container that is never called by the end
        # of its path: take such a scope when the module's own parameters are read there
        params = {n for n in self.constants if n.startswith(path + ".")}
        for scope in sorted((s for s in self.members if path.endswith("." + s)), key=len, reverse=True):
            if any(params.intersection(self.nodes[i].input) for i in self.members[scope]):
                return self.members[scope]
        return []

    def _escaping(self, nodes: Sequence[int]) -> str | None:
        """The last floating-point value computed by ``nodes`` and read outside them."""
        inside = set(nodes)
        floats = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
        found = None
        for i in sorted(inside):
            for out in self.nodes[i].output:
                read_outside = out in self.outputs or any(r not in inside for r in self.readers.get(out, ()))
                if out and read_outside and self.types.get(out, 1) in floats:
                    found = out
        return found

    def _refuse_folded(self, path: str, nodes: Sequence[int]) -> None:
        if f"{path}.weight" in self.constants:
            return
        for i in nodes:
            node = self.nodes[i]
            if node.op_type in CONVOLUTIONS and len(node.input) > 1 and node.input[1].startswith("onnx::") \
                    and node.input[1] in self.constants and _scopes(node)[-1:] == (path,):
                raise InputError(f"{self.where}: module {path!r} is not in the ONNX file as itself: the exporter folded "
                                 "the batch norm after it into its weights, so its output there is the batch norm's; "
                                 "tap the block that holds it, or name an ONNX value")

    # -- the head ---------------------------------------------------------------------------
    def linear(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Weight W (K x D) and bias b (K,) of the linear layer ``name`` (a module path or value).

        Raises:
            InputError: no such module or value, or it is not a linear operation with constant weights.
        """
        out = self.value(name, "head")
        node = self.nodes[self.producer[out]] if out in self.producer else None
        bias = None
        if node is not None and node.op_type == "Add":
            for j, k in ((0, 1), (1, 0)):
                src = node.input[j]
                if src in self.producer and self.nodes[self.producer[src]].op_type == "MatMul" and \
                        self.array(node.input[k]) is not None:
                    node, bias = self.nodes[self.producer[src]], self.array(node.input[k])
                    break
        w = None
        if node is not None and node.op_type == "Gemm":
            attrs = {a.name: (a.f if a.type == a.FLOAT else a.i) for a in node.attribute}
            b = self.array(node.input[1])
            if b is not None and b.ndim == 2 and not attrs.get("transA", 0):
                w = (b if attrs.get("transB", 0) else b.T) * float(attrs.get("alpha", 1.0))
                c = self.array(node.input[2]) if len(node.input) > 2 and node.input[2] else None
                bias = None if c is None else c * float(attrs.get("beta", 1.0))
        elif node is not None and node.op_type == "MatMul":
            b = self.array(node.input[1])
            if b is not None and b.ndim == 2:
                w = b.T
        if w is None:
            op = "no node" if node is None else f"a {node.op_type} node"
            raise InputError(f"{self.where}: head {name!r} is not a linear layer: its output comes from {op}, not a "
                             "Gemm or MatMul with constant weights")
        k = w.shape[0]
        if bias is None:
            bias = np.zeros(k, dtype=np.float32)
        if bias.size not in (1, k):
            raise InputError(f"{self.where}: head {name!r}: a bias of {bias.size} values for {k} outputs")
        return np.ascontiguousarray(w, dtype=np.float32), np.broadcast_to(bias.reshape(-1), (k,)).astype(np.float32)


def read_onnx(path: Path) -> tuple[bytes, Any]:
    """The file's bytes and the parsed ONNX model.

    Raises:
        InputError: no such file, not an ONNX model (or a truncated one), weights in external files,
            or onnx / onnxruntime not installed.
    """
    try:
        import onnx
        import onnxruntime  # noqa: F401
    except ImportError:
        raise InputError("a model of yours in ONNX is read with onnx and onnxruntime: pip install 'oodscope[onnx]'") from None
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    data = path.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise InputError(f"{path}: not an ONNX model, or a truncated one ({type(e).__name__}: {str(e)[:200]})") from None
    if not model.graph.node or not model.graph.output:
        raise InputError(f"{path}: not an ONNX model, or a truncated one (no graph in it)")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise InputError(f"{path}: keeps its weights in external data files; save it as one file "
                         "(onnx.save(model, path, save_as_external_data=False))")
    return data, model


class OnnxModel(ModelAdapter):
    """A user's trained classifier as an ONNX file, read by the post-hoc detectors as a
    :class:`~oodscope.upstream.adapter.ModelAdapter` is (module paths mapped to ONNX values: see the
    module docstring).

    Args:
        path: The ``.onnx`` file (carried with a detector saved after fitting on it).
        penultimate, head, taps, preprocess: As for :class:`ModelAdapter`, module paths or ONNX value names.
        channels_last: Kept in the spec for symmetry; onnxruntime chooses its own layouts.
        batch_size: Images per run when scoring.
        precision: ``float32`` only (what the graph computes in).
    """

    choices = {"precision": ("float32",)}

    def __init__(self, path: str | os.PathLike[str], penultimate: str | None = None, head: str | None = None,
                 taps: Sequence[str] = (), preprocess: Preprocess | None = None, channels_last: bool = False,
                 batch_size: int = 512, precision: str = "float32") -> None:
        Upstream.__init__(self, batch_size=batch_size, precision=precision, device="cpu")
        self.spec = AdapterSpec(penultimate, head, tuple(taps), preprocess or Preprocess(), channels_last)
        if penultimate is not None and penultimate in self.spec.taps:
            raise InputError(f"{penultimate!r} is the penultimate layer; do not list it among the taps too")
        self.source = Path(path)
        self.dtype, self.device = torch.float32, torch.device("cpu")
        self.model = self.net = None  # no torch module: the session below computes
        self._tap_shapes: dict[str, tuple[int, ...]] | None = None
        data, model = read_onnx(self.source)
        self._fingerprint = onnx_fingerprint(data, self.spec)
        graph = OnnxGraph(model, str(self.source))
        self.values = {name: graph.value(name, "module") for name in [*self.spec.taps, *filter(None, [penultimate])]}
        self._head = None if head is None else graph.linear(head)
        self._open(model, graph)

    def _open(self, model: Any, graph: OnnxGraph) -> None:
        """The onnxruntime session of a copy of the graph with the tapped values as outputs."""
        import onnx
        import onnxruntime as ort

        known = set(graph.constants)
        inputs = [i for i in model.graph.input if i.name not in known]
        if len(inputs) != 1:
            raise InputError(f"{self.source}: the ONNX model takes {len(inputs)} inputs ({[i.name for i in inputs]}); "
                             "oodscope gives it one, the images")
        image = inputs[0]
        dtypes = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16, onnx.TensorProto.DOUBLE: np.float64}
        if image.type.tensor_type.elem_type not in dtypes:
            raise InputError(f"{self.source}: its input {image.name!r} is not a floating-point tensor of images")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in image.type.tensor_type.shape.dim]
        self.input_name, self.input_dtype = image.name, dtypes[image.type.tensor_type.elem_type]
        self.input_shape = tuple(dims)
        self.fixed_batch = dims[0] if dims and dims[0] else None  # exported without a dynamic batch axis
        self.logits_name = graph.outputs[0]
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        for name in dict.fromkeys(self.values.values()):
            if name not in graph.outputs:
                copy.graph.output.append(onnx.ValueInfoProto(name=name))
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(copy.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own error types
            raise InputError(f"{self.source}: onnxruntime cannot run this ONNX model ({str(e).splitlines()[0][:300]})") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **spec: Any) -> OnnxModel:
        """The adapter of the ONNX file ``path``."""
        return cls(path, **spec)

    # -- what the detectors read --------------------------------------------------------------
    @property
    def head(self) -> torch.nn.Module | None:
        """The final linear layer as an ``nn.Linear`` holding the graph's weight and bias, if named."""
        if self._head is None:
            return None
        w, b = self._head
        layer = torch.nn.Linear(w.shape[1], w.shape[0]).requires_grad_(False)
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))
        return layer

    def fingerprint(self) -> str:
        """:func:`onnx_fingerprint` of the file and spec."""
        return self._fingerprint

    def files(self) -> dict[str, Path]:
        """The ONNX file, carried by a saved detector as ``model.onnx``."""
        return {ONNX_PROGRAM: self.source}

    def scoring_view(self, settings: dict[str, Any]) -> Upstream:
        precision = settings.get("precision", "float32")
        if precision != "float32":
            raise ModelCapabilityError(f"scores in {precision}, and an ONNX model computes in float32: "
                                       "fit it with precision=float32")
        return super().scoring_view(settings)

    def _run(self, x: torch.Tensor, names: list[str]) -> list[np.ndarray]:
        xb = self._input(x).detach().cpu().contiguous().numpy().astype(self.input_dtype, copy=False)
        step = self.fixed_batch
        if step is None or len(xb) == step:
            return self._session_run(xb, names)
        parts = []
        for i in range(0, len(xb), step):  # a graph exported for one batch size: chunks of it, the last padded
            chunk = xb[i:i + step]
            n = len(chunk)
            if n < step:
                chunk = np.concatenate([chunk, np.zeros((step - n, *chunk.shape[1:]), chunk.dtype)])
            parts.append([o[:n] for o in self._session_run(chunk, names)])
        return [np.concatenate([p[j] for p in parts]) for j in range(len(names))]

    def _session_run(self, xb: np.ndarray, names: list[str]) -> list[np.ndarray]:
        try:
            return self.session.run(names, {self.input_name: xb})
        except Exception as e:  # onnxruntime's own error types
            raise InputError(f"the ONNX model cannot take images of shape {tuple(xb.shape[1:])} (its input: "
                             f"{self.input_shape[1:]}; {str(e).splitlines()[0][:200]}); declare its input "
                             "(preprocess=Preprocess(size=..., channels=...))") from None

    def _check(self, x: torch.Tensor, dropout: bool, precision: str | None) -> None:
        if x.requires_grad and torch.is_grad_enabled():
            raise no_gradients()
        if dropout:
            raise ModelCapabilityError("needs the model's dropout at scoring time, which an ONNX model exported "
                                       "for inference does not keep: use a .pt2 program")
        wanted = precision or self.settings["precision"]
        if wanted != "float32":
            raise ModelCapabilityError(f"an ONNX model computes in float32, not {wanted}")

    @staticmethod
    def _logits(out: np.ndarray) -> torch.Tensor:
        if out.ndim != 2:
            raise InputError(f"the ONNX model's first output must be logits (N, K), got shape {tuple(out.shape)}")
        return torch.from_numpy(np.ascontiguousarray(out)).float()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (float32, on the CPU) of images ``x`` in [0, 1]."""
        self._check(x, False, None)
        out = [self._logits(self._run(x[idx], [self.logits_name])[0])
               for idx in batches(x.shape[0], int(self.settings["batch_size"]))]
        return torch.cat(out) if out else torch.zeros(0, int((self.fitted or {}).get("classes", 0)))

    def taps(self, x: torch.Tensor, dropout: bool = False, precision: str | None = None) -> dict[str, torch.Tensor]:
        """The named modules' outputs (float32, the penultimate one flattened to (N, D)) and the
        ``logits`` on one batch of images ``x`` in [0, 1]."""
        self._check(x, dropout, precision)
        names = list(dict.fromkeys([self.logits_name, *self.values.values()]))
        got = {name: torch.from_numpy(np.ascontiguousarray(a)).float() for name, a in zip(names, self._run(x, names))}
        out = {path: got[self.values[path]] for path in self.spec.taps}
        if self.spec.penultimate is not None:
            out[self.spec.penultimate] = got[self.values[self.spec.penultimate]].flatten(1)
        out["logits"] = self._logits(got[self.logits_name].numpy())
        return out

    def differentiable(self, amp: bool | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """Refused: an ONNX model gives no gradients."""
        raise no_gradients()


MODEL_READERS[".onnx"] = OnnxModel
