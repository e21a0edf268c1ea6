"""Reading why a shadow entry refuses an account (Debian's account stack hides pam_unix's precise code)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hubkit_auth_pam.accounts import shadow_expiry
from hubkit_auth_pam.dummy_hash import FALLBACK_SETTING, DummyHasher, setting_from_shadow

TODAY = 20000


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("u:$y$x:19990:0:99999:7:::", None),  # ordinary
        ("u:$y$x:19990:0:99999:7::0:", "account"),  # chage -E 0
        ("u:$y$x:19990:0:99999:7::20000:", "account"),  # expires today
        ("u:$y$x:19990:0:99999:7::20001:", None),  # expires tomorrow
        ("u:$y$x:0:0:99999:7:::", "password"),  # chage -d 0: must change
        ("u:$y$x:19900:0:90:7:::", "password"),  # older than max days
        ("u:$y$x:19900:0:90:7:5::", "account"),  # and past the inactivity grace
        ("u:$y$x::0:::::", None),  # aging off
    ],
)
def test_shadow_reasons(tmp_path: Path, entry: str, expected: str | None) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text(f"root:*:19000:0:99999:7:::\n{entry}\n")
    assert shadow_expiry("u", shadow=str(shadow), today=TODAY) == expected
    assert shadow_expiry("other", shadow=str(shadow), today=TODAY) is None


def test_unreadable_shadow_gives_no_reason(tmp_path: Path) -> None:
    assert shadow_expiry("u", shadow=str(tmp_path / "missing")) is None


def test_dummy_hash_uses_a_real_accounts_setting(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text(
        "root:*:19000::::::\nsvc:!:19000::::::\nu:$y$j9T$abcdefgh$HASHHASH:19990:0:99999:7:::\n"
    )
    assert setting_from_shadow(str(shadow)) == "$y$j9T$abcdefgh"
    mixed = [
        "a:$6$saltA$H:1::::::",
        "b:$y$j9T$saltB$H:1::::::",
        "c:$y$j9T$saltC$H:1::::::",
        "d:$y$jDT$saltD$H:1::::::",
    ]
    shadow.write_text("\n".join(mixed) + "\n")
    assert setting_from_shadow(str(shadow)) == "$y$j9T$saltC"  # the most common method and cost
    shadow.write_text("root:!:19000::::::\n")
    assert setting_from_shadow(str(shadow)) is None
    assert DummyHasher(None).setting == FALLBACK_SETTING
