"""A pickle reader that never imports or calls anything real.

The CIFAR "python version" archives store each batch as a pickled ``dict``
holding a numpy array. Loading that with :func:`pickle.load` would let a
tampered archive run arbitrary code. :func:`safe_loads` instead refuses every
global except the few names numpy uses to rebuild arrays, and maps those to
local stand-ins that only *record* the pickled state. Afterwards the recorded
states are turned into plain numpy arrays with :func:`numpy.frombuffer`.

Supported: integer arrays (``u1``/``u2``/``u4``/``u8``/``i1``..``i8``, any byte
order, C or Fortran layout) inside ``dict``/``list``/``tuple`` structures, as
written by Python 2 ``cPickle`` with numpy 1.x (``numpy.core.multiarray``) and by
Python 3 with numpy 2 (``numpy._core.multiarray``). Python 3 protocol-2 pickles
spell ``bytes`` objects as ``_codecs.encode(text, "latin1")``; that one call is
also mapped to a local function that does only that conversion.
"""

from __future__ import annotations

import io
import math
import pickle
import re
from typing import Any

import numpy as np

from oodscope.errors import DataError

_INT_TYPESTR = re.compile(r"^[ui][1248]$")
_MAX_DEPTH = 64


class _NdarrayType:
    """Stand-in for ``numpy.ndarray`` (only ever passed to ``_reconstruct``)."""


class _PickledArray:
    """Records the state numpy pickles for an array (BUILD / ``__setstate__``)."""

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _PickledDtype:
    """Stand-in for ``numpy.dtype``: records the type string and its state."""

    def __init__(self, spec: Any = None, align: Any = False, copy: Any = False) -> None:
        self.spec = spec
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _reconstruct(subtype: Any, shape: Any = None, typecode: Any = None) -> _PickledArray:
    """Stand-in for ``numpy.core.multiarray._reconstruct``: an empty recorder."""
    if subtype is not _NdarrayType:
        raise pickle.UnpicklingError("array reconstruction with a type other than numpy.ndarray")
    return _PickledArray()


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode`` limited to what protocol-2 ``bytes`` need."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode used for something other than bytes")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy", "dtype"): _PickledDtype,
    ("_codecs", "encode"): _latin1_bytes,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` only hands out the local stand-ins."""

    def __init__(self, data: bytes, source: str) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        """Return a stand-in for the few numpy names; refuse everything else."""
        module_s = module.decode("latin1") if isinstance(module, bytes) else str(module)
        name_s = name.decode("latin1") if isinstance(name, bytes) else str(name)
        found = _ALLOWED.get((module_s, name_s))
        if found is None:
            raise DataError(f"refusing to load global {module_s}.{name_s} from {self._source}")
        return found


def safe_loads(data: bytes, source: str) -> Any:
    """Unpickle ``data`` without running code; numpy arrays come back as arrays.

    Args:
        data: The pickle bytes.
        source: What to call the data in error messages (file and member).

    Raises:
        DataError: a forbidden global, a malformed pickle, or an array that is
            not a supported integer array.
    """
    try:
        obj = _RestrictedUnpickler(data, source).load()
    except DataError:
        raise
    except RecursionError as err:
        raise DataError(f"{source}: pickle nested too deeply") from err
    except Exception as err:  # noqa: BLE001 - any failure of a malformed pickle
        raise DataError(f"{source}: corrupt or unsupported pickle ({type(err).__name__}: {err})") from err
    return _materialise(obj, source, 0)


def _materialise(obj: Any, source: str, depth: int) -> Any:
    """Replace recorded arrays inside plain containers by numpy arrays."""
    if depth > _MAX_DEPTH:
        raise DataError(f"{source}: pickle nested too deeply")
    if isinstance(obj, _PickledArray):
        return _to_array(obj, source)
    if isinstance(obj, dict):
        return {
            _materialise(k, source, depth + 1): _materialise(v, source, depth + 1)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_materialise(v, source, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v, source, depth + 1) for v in obj)
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, bytearray)):
        return obj
    raise DataError(f"{source}: unexpected object of type {type(obj).__name__} in pickle")


def _to_array(rec: _PickledArray, source: str) -> np.ndarray:
    """Turn a recorded ndarray state into a writable numpy array."""
    state = rec.state
    if isinstance(state, tuple) and len(state) == 5:
        _, shape, dtype_rec, fortran, raw = state
    elif isinstance(state, tuple) and len(state) == 4:
        shape, dtype_rec, fortran, raw = state
    else:
        raise DataError(f"{source}: malformed numpy array state in pickle")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise DataError(f"{source}: malformed numpy array shape {shape!r} in pickle")
    if not isinstance(dtype_rec, _PickledDtype):
        raise DataError(f"{source}: malformed numpy dtype in pickle")
    dtype = _to_dtype(dtype_rec, source)
    if isinstance(raw, str):
        raw = raw.encode("latin1")
    if not isinstance(raw, (bytes, bytearray)):
        raise DataError(f"{source}: numpy array without raw bytes (object arrays are not supported)")
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{source}: numpy array of shape {shape} and dtype {dtype} needs {expected} bytes, "
            f"pickle holds {len(raw)}"
        )
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(arr, dtype=dtype.newbyteorder("="))


def _to_dtype(rec: _PickledDtype, source: str) -> np.dtype:
    """Build an integer dtype from a recorded type string and byte order."""
    spec = rec.spec.decode("latin1") if isinstance(rec.spec, bytes) else rec.spec
    if not isinstance(spec, str) or not _INT_TYPESTR.match(spec):
        raise DataError(f"{source}: unsupported numpy dtype {spec!r} in pickle (only integer arrays)")
    order = "|"
    if isinstance(rec.state, tuple) and len(rec.state) > 1:
        order = rec.state[1]
        order = order.decode("latin1") if isinstance(order, bytes) else order
    if order not in ("|", "<", ">", "="):
        raise DataError(f"{source}: malformed numpy byte order {order!r} in pickle")
    return np.dtype(spec if order in ("|", "=") else order + spec)
