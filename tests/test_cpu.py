"""difflab.cpu.tune_malloc: freed tensor buffers stay in the heap for reuse (glibc)."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")

PROBE = """
import ctypes, sys, torch
from difflab.cpu import tune_malloc
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                "usmblks", "fsmblks", "uordblks", "fordblks",
                                                "keepcost")]
libc = ctypes.CDLL("libc.so.6")
if not hasattr(libc, "mallinfo2"):
    print("skip"); sys.exit()
libc.mallinfo2.restype = Info
if sys.argv[1] == "tuned":
    assert tune_malloc() is True
x = torch.ones(10 * 2**20)  # 40 MiB
del x
print(libc.mallinfo2().fordblks / 2**20)  # free bytes kept in the heap, MiB
"""


def _kept_mib(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    if out == "skip":
        pytest.skip("glibc without mallinfo2")
    return float(out)


def test_freed_buffers_stay_in_the_heap_only_when_tuned():
    assert _kept_mib("plain") < 20  # by default glibc unmaps a 40 MiB buffer when it is freed
    assert _kept_mib("tuned") >= 40  # tuned, it stays for the next allocation
