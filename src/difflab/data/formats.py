"""File formats of the image sets: IDX (MNIST, Fashion-MNIST) and CIFAR-10's python pickles.

Both readers check what they read and fail with one-line ValueErrors naming the file. CIFAR-10's
batches are pickles; they are read with an unpickler that can rebuild numpy arrays and plain
containers and nothing else, so a crafted file cannot execute code (pickle's own documentation,
"Restricting Globals").
"""

from __future__ import annotations

import builtins
import codecs
import gzip
import io
import math
import os
import pickle
import zlib

import numpy as np

__all__ = ["IDX_DTYPES", "RefusedGlobal", "SafeUnpickler", "read_idx", "safe_load_pickle"]

# IDX type byte -> big-endian numpy dtype (LeCun et al., the MNIST database page, "IDX file format")
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: str | os.PathLike) -> bytes:
    """A file's bytes, gunzipped if it starts with the gzip magic 1f 8b."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: corrupt gzip data ({e})") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (optionally gzipped) as a numpy array of its declared type and dimensions.

    Header: two zero bytes, a type byte, the number of dimensions, then each size as a big-endian
    uint32; the data follow, big-endian, in C order, and must fill the file exactly.
    """
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic {data[:4].hex() or 'empty'})")
    dtype, ndim = np.dtype(IDX_DTYPES[data[2]]), data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    expected = offset + math.prod(dims) * dtype.itemsize  # python ints: no overflow
    if len(data) != expected:
        raise ValueError(f"{path}: IDX header says {dims} ({expected} bytes), file has {len(data)}")
    arr = np.frombuffer(data, dtype, offset=offset).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The callables numpy's array pickles name, under numpy 1.x and 2.x module names."""
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric
    fns = {"multiarray._reconstruct": multiarray._reconstruct,
           "multiarray.scalar": multiarray.scalar, "numeric._frombuffer": numeric._frombuffer}
    out: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray,
                                          ("numpy", "dtype"): np.dtype}
    for prefix in ("numpy.core", "numpy._core"):
        for qual, fn in fns.items():
            mod, name = qual.split(".")
            out[(f"{prefix}.{mod}", name)] = fn
    return out


_BUILTINS = {("builtins", n): getattr(builtins, n)
             for n in ("dict", "list", "bytes", "str", "int")}
_BUILTINS.update({("__builtin__", n): v for (_, n), v in list(_BUILTINS.items())})  # Python 2
# Python 3 writes bytes at pickle protocol <= 2 as _codecs.encode(str, "latin1") (a numpy array's
# data included); a pure function, allowed as torch's weights_only unpickler allows it.
_BUILTINS[("_codecs", "encode")] = codecs.encode


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global that SafeUnpickler does not allow."""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves numpy's array globals, dict/list/bytes/str/int and nothing else.

    (Also _codecs.encode, a pure function that rebuilds bytes.) Any other global - os.system,
    builtins.eval, a class of the writer's - is refused, so loading cannot run code (pickle's
    documentation, "Restricting Globals").
    """

    ALLOWED = {**_numpy_globals(), **_BUILTINS}

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"refused to load global {module}.{name}") from None


def safe_load_pickle(path: str | os.PathLike, encoding: str = "bytes"):
    """The object in a pickle file, via SafeUnpickler; ValueError (one line) if refused or corrupt.

    encoding="bytes" reads Python 2 pickles (as CIFAR-10's are) with their str as bytes.
    """
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return SafeUnpickler(io.BytesIO(raw), encoding=encoding).load()
    except RefusedGlobal as e:
        raise ValueError(f"{path}: unsafe pickle, {e}; nothing was executed") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError) as e:
        raise ValueError(f"{path}: corrupt pickle ({type(e).__name__}: {e})") from None
