"""glibc heap tuning for a process that moves large bodies: stop the heap from growing and shrinking per chunk.

Each read of a large body is a fresh bytes object of up to 256 KiB. With glibc's defaults, such blocks are
served by mmap or from the top of the heap, and freeing one trims the heap again; a 1 MiB response then cost
~370 minor page faults and ~12 ``brk`` calls, and most of the proxy's CPU went to the kernel. Fixed
thresholds keep freed blocks in the heap for the next read, and the memory is handed back with
``malloc_trim`` once the proxy goes idle, so a burst does not leave RSS high.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("hubkit_proxy")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 64 << 20  # free memory kept at the top of the heap before glibc gives it back
MMAP_THRESHOLD = 4 << 20  # blocks below this come from the heap (read buffers are 256 KiB at most)


class Heap:
    """mallopt/malloc_trim when the C library is glibc; a no-op elsewhere (musl, macOS)."""

    def __init__(self) -> None:
        self.libc: ctypes.CDLL | None = None
        if sys.platform.startswith("linux"):
            try:
                try:  # glibc's soname; find_library would run ldconfig, slow for a process that must start fast
                    libc = ctypes.CDLL("libc.so.6")
                except OSError:
                    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                libc.malloc_trim.argtypes = [ctypes.c_size_t]
                self.libc = libc
            except (OSError, AttributeError):  # not glibc
                self.libc = None
        self.tuned = False

    def tune(self) -> bool:
        """Fix the trim and mmap thresholds (glibc's dynamic thresholds are what churn). True if applied."""
        if self.libc is None:
            return False
        ok = bool(self.libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        ok = bool(self.libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and ok
        self.tuned = ok
        if not ok:
            log.debug("mallopt refused the heap thresholds")
        return ok

    def trim(self) -> None:
        """Return free heap memory to the system (called when the proxy has been idle for a while)."""
        if self.libc is not None:
            self.libc.malloc_trim(0)
