"""Look-alike user names still coexist: invisible characters outside the refused categories pass.

``check_name`` refuses categories Zs/Zl/Zp/Cc/Cf/Co/Cs/Cn and anything NFKC changes, but these code points are
invisible (Unicode ``Default_Ignorable_Code_Point``, or blank glyphs) and are letters/marks/symbols that NFKC
keeps: ``alice`` + U+034F COMBINING GRAPHEME JOINER, a variation selector, a Hangul filler or U+2800 BRAILLE
PATTERN BLANK is a second account that displays as ``alice`` (admin page, share lists, ``/user/...`` URLs).

Fault: ``hubkit/services/users.py`` (``check_name``): refuse Default_Ignorable_Code_Point (the property list is
short: U+034F, U+115F-U+1160, U+17B4-U+17B5, U+180B-U+180F, U+FE00-U+FE0F, U+E0100-U+E01EF, ...) and U+2800.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hardhub import HardHub, login

pytestmark = [pytest.mark.timeout(180)]

INVISIBLE = {
    "U+034F COMBINING GRAPHEME JOINER": "\u034f",
    "U+FE0F VARIATION SELECTOR-16": "\ufe0f",
    "U+E0100 VARIATION SELECTOR-17": "\U000e0100",
    "U+180B MONGOLIAN FREE VARIATION SELECTOR ONE": "\u180b",
    "U+17B4 KHMER VOWEL INHERENT AQ": "\u17b4",
    "U+115F HANGUL CHOSEONG FILLER": "\u115f",
    "U+1160 HANGUL JUNGSEONG FILLER": "\u1160",
    "U+2800 BRAILLE PATTERN BLANK": "\u2800",
}


@pytest.fixture(scope="module")
def boss(sqlite_hub: HardHub) -> str:
    return sqlite_hub.token("boss")


@pytest.mark.parametrize("char", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_an_invisible_character_does_not_make_a_second_alice(
    sqlite_hub: HardHub, boss: str, char: str
) -> None:
    base = f"pgvis{ord(char):x}"
    assert sqlite_hub.api("POST", f"/users/{base}", boss).status_code == 201
    r = sqlite_hub.api("POST", "/users/" + quote(base + char, safe=""), boss)
    assert r.status_code in (400, 409), (
        f"{base!r} + {char!r} became its own account: {r.status_code} {r.text[:200]}"
    )


def test_logging_in_with_an_invisible_suffix_does_not_create_a_look_alike(
    sqlite_hub: HardHub, boss: str
) -> None:
    assert sqlite_hub.api("POST", "/users/pgvislogin", boss).status_code == 201
    with sqlite_hub.client() as c:
        login(c, "pgvislogin\u034f")
    names = {u["name"] for u in sqlite_hub.api("GET", "/users", boss).json()}
    assert names & {"pgvislogin\u034f"} == set(), (
        "a login created a second account that displays as pgvislogin"
    )
