"""The rules every piece of text and JSON entering the hub passes, whichever door it comes through.

Text must be encodable as UTF-8 (no lone surrogates, no invalid percent-escapes in paths), hold no NUL, and
JSON must be bounded in depth. Checked once, at the boundary, so nothing stored can later make a response fail: a lone
surrogate stored in one server's ``user_options`` once turned every user listing that included its owner into
a 500. Framework-free: the API, the pages and the CLI all use it.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import unquote_to_bytes

from .errors import HubkitError

MAX_JSON_DEPTH = 32


class BadInput(HubkitError):
    """Text or JSON the hub refuses to take in (shown to the caller as a 400)."""


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(text: str, what: str = "text") -> str:
    if not encodable(text):
        raise BadInput(f"{what} contains characters that cannot be encoded as UTF-8 (lone surrogates)")
    if "\x00" in text:  # PostgreSQL cannot store it in text, and nothing legitimate needs it
        raise BadInput(f"{what} contains a NUL character")
    return text


def check_json(value: Any, *, what: str = "request body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Every string (keys included) encodable, nesting at most ``max_depth`` deep. Iterative: a hostile
    document cannot exhaust the stack here."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, what)
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise BadInput(f"{what} is nested more than {max_depth} levels deep")
            if isinstance(item, dict):
                for k, v in item.items():
                    if isinstance(k, str):
                        check_text(k, what)
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in item)
    return value


def decode_url_part(raw: bytes | str, what: str = "URL path") -> str:
    """Percent-decode strictly: escapes that are not UTF-8 (``%C0%AE``, ``%ff%fe``) are refused instead of
    becoming U+FFFD, which would otherwise reach the database as a user named ``"\\ufffd\\ufffd"``."""
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
    try:
        return check_text(unquote_to_bytes(data).decode("utf-8"), what)
    except UnicodeDecodeError:
        raise BadInput(f"{what} contains percent-escapes that are not valid UTF-8") from None


def json_bytes(value: Any) -> bytes:
    """Serialise for a response; never fails on stored text. A lone surrogate that reached the database
    before the input checks existed is written as its JSON escape (``\\ud800``), which is what
    ``backslashreplace`` produces for it, so the document stays valid and nothing is lost."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:  # NaN/Infinity stored before the input checks refused them
        text = json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _refuse_constant(name: str) -> Any:
    raise BadInput(f"{name} is not valid JSON (numbers must be finite)")


def loads(data: bytes | str, *, what: str = "request body") -> Any:
    """Parse JSON from outside: invalid UTF-8, NaN/Infinity, lone surrogates and deep nesting are refused."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise BadInput(f"{what} is nested too deeply") from None
    except UnicodeDecodeError:
        raise BadInput(f"{what} is not valid UTF-8") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise BadInput(f"Invalid JSON in {what}: {exc}") from None
    return check_json(value, what=what)
