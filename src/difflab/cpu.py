"""CPU process settings that make PyTorch faster and change no result.

glibc's malloc serves every allocation above its mmap threshold (128 KiB at start, adapting up
to at most 32 MiB) with a fresh mmap, and gives freed heap memory above the trim threshold back to
the kernel. A diffusion network allocates and frees activation buffers of many megabytes at every
call, so without tuning the kernel maps and zero-fills them again and again: 12 to 18 % of a
`unet-mnist` forward pass on the 2-core test machine (docs/benchmarks.md). `tune_malloc` raises
both thresholds, so the buffers stay in the heap and are reused, as jemalloc or tcmalloc would.
The `difflab` command calls it at start; a library user can call it once in their own program.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["tune_malloc"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
# 1 GiB: above any activation buffer of the presets. glibc before 2.27 refuses more than 32 MiB,
# its documented maximum, so that is the fallback. Both fit mallopt's C int.
_MMAP_THRESHOLDS = (1 << 30, 32 << 20)
_TRIM_THRESHOLD = (1 << 31) - 1  # INT_MAX: keep freed memory


def tune_malloc() -> bool:
    """Keep freed tensor buffers in the process for reuse (glibc only). Returns True if applied;
    False on other C libraries (macOS, Windows, musl), where it does nothing. Memory the process
    has used stays with it until it exits, instead of going back to the system between calls."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not any(mallopt(_M_MMAP_THRESHOLD, size) for size in _MMAP_THRESHOLDS):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
