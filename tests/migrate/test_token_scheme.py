"""JupyterHub's token hash, checked against JupyterHub's own implementation, and the hub's lookup of imported
tokens: found by prefix after hubkit's own lookup misses, which stays a single statement for hubkit's tokens (run by
the storage's hot-path reader, so the imported hashes' table is never read for them)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hubkit.auth.identity import from_token
from hubkit.auth.jupyterhub_tokens import JupyterHubHash
from hubkit.auth.tokens import issue_token, lookup_token
from hubkit.importers.jupyterhub.actions import CreateUser, ImportToken
from hubkit.importers.jupyterhub.target import apply
from hubkit.storage.access import Storage
from hubkit.storage.engine import create_sessionmaker
from hubkit.storage.orm import APIToken, JupyterHubTokenHash
from jupyterhub.utils import hash_token, new_token
from sqlalchemy import delete, event, select

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("secret", "rounds", "algorithm"),
    [
        (new_token(), 1, "sha512"),  # what JupyterHub generates
        ("an-operator-chose-this", 16384, "sha512"),  # c.JupyterHub.api_tokens / service api_token
        ("ünïcødé-token-☃", 16384, "sha512"),
        (new_token(), 3, "sha256"),
    ],
)
def test_matches_what_jupyterhub_stored(secret: str, rounds: int, algorithm: str) -> None:
    stored = hash_token(secret, rounds=rounds, salt=8, algorithm=algorithm)
    parsed = JupyterHubHash.parse(stored)
    assert parsed is not None
    assert parsed.matches(secret)
    assert not parsed.matches(secret + "x")
    assert not parsed.matches(secret[:-1])


@pytest.mark.parametrize(
    "stored",
    [
        "sha512:0:abcd:00",
        "sha512:99999999:abcd:00",
        "whirlpool:1:abcd:00",
        "sha512:1:abcd:XYZ",
        "sha512:1:abcd",
        "$2b$12$bcryptlooking",
        "",
    ],
)
def test_hashes_it_cannot_check_are_refused(stored: str) -> None:
    assert JupyterHubHash.parse(stored) is None


def count_selects(engine: Any) -> list[str]:
    seen: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    return seen


async def test_imported_token_lookup(db: Any) -> None:
    secret = new_token()
    slow_secret = "config-token-" + secrets.token_hex(4)
    now = datetime.now(UTC)
    make = create_sessionmaker(db)
    async with make() as s:
        await apply(
            s,
            [
                CreateUser("alice", False, None, None, None),
                ImportToken(1, "alice", hash_token(secret, rounds=1), secret[:4], ("read:users!user=alice",), "n",
                            now, None, None),
                ImportToken(2, "alice", hash_token(slow_secret, rounds=16384), slow_secret[:4], ("inherit",), "",
                            now, now + timedelta(days=1), None),
            ],
        )
    async with make() as s:
        own, _ = await issue_token(s, user_id=1, scopes=["inherit"])
        await s.commit()
    storage = Storage(db)
    selects = count_selects(db)

    before = storage.reads.statements
    ident = await from_token(storage, own)
    assert ident is not None and ident.name == "alice"
    # hubkit's own token: one statement (the reader's), imported tokens never looked at
    assert storage.reads.statements - before == 1
    assert not any("jupyterhub_token_hashes" in q for q in selects), selects
    selects.clear()

    ident = await from_token(storage, secret)
    assert ident is not None and ident.name == "alice"
    assert "read:users!user=alice" in {f"{k}!{f}" if f else k for k, fs in ident.scopes.items() for f in fs}
    assert "jupyterhub_token_hashes" in " ".join(selects)
    ident = await from_token(storage, slow_secret)
    assert ident is not None and ident.name == "alice"
    for wrong in (secret[:4] + "0" * 28, secret.upper(), slow_secret[:-1], "short"):
        assert await from_token(storage, wrong) is None

    async with make() as s:
        row = await lookup_token(s, secret)
        assert row is not None and row.prefix == secret[:4] and row.extra["imported_from"] == "jupyterhub"
        # expired imported tokens die on sight like hubkit's own
        row2 = await lookup_token(s, slow_secret)
        assert row2 is not None
        row2.expires_at = now - timedelta(seconds=1)
        await s.commit()
    async with make() as s:
        assert await lookup_token(s, slow_secret) is None
        await s.commit()
        # revoking leaves a tombstone: the hash stays known (no re-import) but matches nothing
        await s.execute(delete(APIToken).where(APIToken.id == row.id))
        await s.commit()
        left = (await s.execute(select(JupyterHubTokenHash.token_id))).scalars().all()
        assert left == [None, None]
    assert await from_token(storage, secret) is None
    await storage.reads.close()
