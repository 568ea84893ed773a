"""``y <- a·x + b·y`` in one pass, from the OpenBLAS that NumPy's wheels bundle.

NumPy has no fused ``a·x + b·y``: SGD with momentum (``b = μb + g``, ``θ -= lr·b``) takes
four NumPy passes over the parameters and a temporary, where BLAS's ``axpby`` and ``axpy``
take two, on all the BLAS threads. NumPy's wheels ship OpenBLAS as a shared library beside
the package (``numpy.libs/`` on Linux and Windows, ``numpy/.dylibs/`` on macOS), with the
CBLAS symbols under a prefix and suffix (``scipy_cblas_saxpby64_`` with 64-bit integers in
NumPy 2). Where no such library or symbol is found, or where a check at import gives a
wrong answer, ``available`` is False and :func:`axpby` always returns False: callers then
use NumPy, whose results are the same up to the rounding of a fused multiply-add.
"""

from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

# (symbol pattern, integer type): NumPy 2 wheels (scipy-openblas, ILP64), NumPy 1.22-1.26
# wheels (openblas64_), then a plain 32-bit CBLAS.
_SYMBOLS = (("scipy_cblas_{}64_", ctypes.c_int64), ("cblas_{}64_", ctypes.c_int64),
            ("scipy_cblas_{}", ctypes.c_int32), ("cblas_{}", ctypes.c_int32))
_REAL = {np.dtype(np.float32): ("s", ctypes.c_float),
         np.dtype(np.float64): ("d", ctypes.c_double)}


def _libraries() -> list[str]:
    root = os.path.dirname(np.__file__)
    found = []
    for folder in (os.path.join(root, os.pardir, "numpy.libs"), os.path.join(root, ".dylibs")):
        found += sorted(glob.glob(os.path.join(folder, "*openblas*")))
    return found


def _bind():
    """``{dtype: (axpby, axpy)}`` for the first bundled library that has them, else ``{}``."""
    for path in _libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for pattern, integer in _SYMBOLS:
            funcs = {}
            for dtype, (prefix, real) in _REAL.items():
                try:
                    by = getattr(lib, pattern.format(prefix + "axpby"))
                    py = getattr(lib, pattern.format(prefix + "axpy"))
                except AttributeError:
                    break
                p = ctypes.c_void_p
                by.argtypes = [integer, real, p, integer, real, p, integer]
                py.argtypes = [integer, real, p, integer, p, integer]
                by.restype = py.restype = None
                funcs[dtype] = (by, py)
            if len(funcs) == len(_REAL):
                return funcs
    return {}


_FUNCS = _bind()


# A call through ctypes costs a few microseconds; SGD momentum's whole update, BLAS vs NumPy
# (python -m benchmarks.elementwise, 2 threads): 16 values 10.4 vs 7.9 us, 32,768 25.4 vs
# 25.2, 65,536 30.0 vs 33.2, 235,146 (the benchmark MLP) 58.4 vs 97.0.
MIN_SIZE = 32768


def _usable(x: np.ndarray, y: np.ndarray) -> bool:
    return (x.size >= MIN_SIZE and x.dtype == y.dtype and x.dtype in _FUNCS
            and x.size == y.size and x.flags.c_contiguous and y.flags.c_contiguous
            and y.flags.writeable)


def axpby(a: float, x: np.ndarray, b: float, y: np.ndarray) -> bool:
    """``y <- a·x + b·y`` in place (``b == 1``: axpy); False, nothing done, when BLAS would
    not pay (fewer than :data:`MIN_SIZE` values) or cannot take these arrays (no library,
    other dtypes, not contiguous): then use NumPy."""
    if not _usable(x, y):
        return False
    by, py = _FUNCS[x.dtype]
    if b == 1:
        py(x.size, a, x.ctypes.data, 1, y.ctypes.data, 1)
    else:
        by(x.size, a, x.ctypes.data, 1, b, y.ctypes.data, 1)
    return True


def _self_check() -> None:
    """Drop the binding if it computes anything else than NumPy (a wrong signature)."""
    global _FUNCS
    for dtype in list(_FUNCS):
        x = np.arange(1, MIN_SIZE + 2, dtype=dtype) / 7  # OpenBLAS threads from 10,000
        y = np.linspace(-3, 3, x.size, dtype=dtype)
        want_by, want_py = 0.5 * x + 0.25 * y, 2 * x + y
        got_by, got_py = y.copy(), y.copy()
        axpby(0.5, x, 0.25, got_by)
        axpby(2.0, x, 1.0, got_py)
        if not (np.allclose(got_by, want_by, rtol=1e-6)
                and np.allclose(got_py, want_py, rtol=1e-6)):
            _FUNCS = {}
            return


_self_check()
available = bool(_FUNCS)


# ---- the BLAS thread count, changed while running ----------------------------------------
_THREAD_SYMBOLS = (("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
                   ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
                   ("openblas_set_num_threads", "openblas_get_num_threads"))


def _bind_threads():
    """(set, get) of the bundled OpenBLAS's thread count, else None."""
    for path in _libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for setter, getter in _THREAD_SYMBOLS:
            try:
                set_, get = getattr(lib, setter), getattr(lib, getter)
            except AttributeError:
                continue
            set_.argtypes, set_.restype = [ctypes.c_int], None
            get.argtypes, get.restype = [], ctypes.c_int
            return set_, get
    return None


_THREADS = _bind_threads()


def get_threads() -> int | None:
    """The BLAS library's thread count, or None where dlcli cannot ask it."""
    if _THREADS is not None:
        return int(_THREADS[1]())
    try:
        from threadpoolctl import threadpool_info  # the bench extra; optional
    except ImportError:
        return None
    counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return counts[0] if counts else None


def set_threads(n: int) -> bool:
    """Set the BLAS thread count for the rest of the process; False where it cannot."""
    if _THREADS is not None:
        _THREADS[0](int(n))
        return get_threads() == n
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    global _LIMITS
    _LIMITS = threadpool_limits(int(n), user_api="blas")  # kept: the limit lasts while held
    return get_threads() == n


_LIMITS = None
