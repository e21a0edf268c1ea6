"""Names of users, groups and servers: the one place that knows the rules.

A name appears in URL paths and in other systems (OS accounts, container labels), so it must be safe there and
must not look like another name: Unicode is normalised (NFC, lower case by default) and invisible, format and
compatibility characters are refused.
"""

from __future__ import annotations

import re
import unicodedata

from ..errors import InvalidName
from ..plugins.hooks import Hooks

MAX_NAME = 255
# no slashes, backslashes, URL metacharacters, whitespace or control characters
_NAME_RE = re.compile(r"^[^\x00-\x20\x7f-\x9f/\\?#%&\"'<>`]+$")


# Unicode spaces, line/paragraph separators, control and format characters (zero-width space, BOM, U+202E),
# private-use, surrogate and unassigned code points: invisible or unstable in a name.
_REFUSED_CATEGORIES = {"Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cs", "Cn"}


# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): code points that render as nothing. Many
# are format characters (refused by category above), but some are letters or marks (the Hangul fillers, variation
# selectors, U+034F), which NFKC keeps. U+2800 BRAILLE PATTERN BLANK is not ignorable but shows as a blank.
_INVISIBLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x2800, 0x2800),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip


def _invisible(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _INVISIBLE)


def _char(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, '(unnamed)')}"


def check_name(name: object, *, what: str = "user name") -> str:
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{what} must be a non-empty string")
    if len(name) > MAX_NAME:
        raise InvalidName(f"{what} is longer than {MAX_NAME} characters")
    if name in (".", "..") or name.startswith(".") or not _NAME_RE.match(name):
        raise InvalidName(
            f"invalid {what} {name[:64]!r}: no slashes, spaces, control characters, URL metacharacters "
            "or leading dot"
        )
    for ch in name:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES or ch == "\ufffd" or _invisible(ch):
            raise InvalidName(f"invalid {what}: it contains {_char(ch)}, an invisible or unusable character")
    if unicodedata.normalize("NFKC", name) != unicodedata.normalize("NFC", name):
        odd = next(c for c in name if unicodedata.normalize("NFKC", c) != c)
        raise InvalidName(
            f"invalid {what}: {_char(odd)} is a compatibility form of another character (full-width letters, "
            "ligatures, superscripts...): names made of them would look like other names"
        )
    return name


def canonical_name(name: str, *, lower: bool = True) -> str:
    """NFC (so ``e`` + combining acute and ``é`` are one name) and, by default, lower case (as JupyterHub's
    ``normalize_username``), then the rules of :func:`check_name`: look-alike names cannot coexist."""
    name = unicodedata.normalize("NFC", name.strip())
    if lower:
        name = unicodedata.normalize("NFC", name.lower())
    return check_name(name)


async def normalize(hooks: Hooks, raw: str, *, lower: bool = True) -> str:
    """A user name as typed or as an identity provider sent it, made canonical: plugins first (e.g. map an
    e-mail address to an account), then the core's rule (``[auth] normalize_usernames``)."""
    name = await hooks.normalize_username(raw)
    return canonical_name(name, lower=lower)
