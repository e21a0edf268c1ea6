"""A password hash computed for nothing, so an unknown user costs what a wrong password costs.

pam_unix returns at once for an account it cannot find (about 10 ms here) but hashes the password for one it
knows (40-150 ms with yescrypt), which tells an attacker which names exist. The authenticator's uniform
failure delay hides that; this is the second layer for a delay configured short or a machine so loaded that
PAM outlasts it. We hash with the most common setting (algorithm, cost) in /etc/shadow via libcrypt's
re-entrant ``crypt_r``. It narrows the gap rather than closing it (pam_unix does somewhat more than one hash).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

# yescrypt with Debian's default cost, for machines where no local hash can be read
FALLBACK_SETTING = "$y$j9T$hubkitdummysaltvalue00"
_CRYPT_DATA_SIZE = 65536  # >= sizeof(struct crypt_data) in libxcrypt (32768) and glibc (131232 bits)


class DummyHasher:
    def __init__(self, setting: str | None) -> None:
        self.setting = setting or FALLBACK_SETTING
        self._crypt_r: Any = None
        self._local = threading.local()
        name = ctypes.util.find_library("crypt")
        if name:
            try:
                fn = ctypes.CDLL(name).crypt_r
            except (OSError, AttributeError):
                return
            fn.restype = ctypes.c_char_p
            fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
            self._crypt_r = fn

    @property
    def available(self) -> bool:
        return self._crypt_r is not None

    def hash(self, password: str) -> str | None:
        """``crypt_r(password, setting)`` (blocking), or ``None`` without libcrypt or for a bad setting."""
        if self._crypt_r is None:
            return None
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
        out = self._crypt_r(password.encode("utf-8", "replace"), self.setting.encode(), buf)
        return out.decode() if out and not out.startswith(b"*") else None

    def burn(self, password: str) -> None:
        """Hash ``password`` and throw the result away (blocking: call from a worker thread)."""
        self.hash(password)


def setting_from_shadow(shadow: str = "/etc/shadow") -> str | None:
    """The ``$id$params$salt`` of a hash in ``shadow`` using the most common method and cost (what most
    accounts cost to check), or ``None`` when the file is unreadable or has no modern hash."""
    try:
        with open(shadow, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    by_kind: dict[str, list[str]] = {}
    for line in lines:
        fields = line.split(":")
        if len(fields) > 1 and fields[1].startswith("$") and fields[1].count("$") >= 3:
            setting = fields[1].rsplit("$", 1)[0]  # drop the hash
            kind = setting.rsplit("$", 1)[0]  # drop the salt: method and parameters
            by_kind.setdefault(kind, []).append(setting)
    if not by_kind:
        return None
    most = max(by_kind.values(), key=len)
    return most[-1]
