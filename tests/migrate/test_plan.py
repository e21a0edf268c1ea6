"""The import planner's rules on data shaped like JupyterHub's, for the cases a short JupyterHub run does not
produce (OAuth session tokens, servers' own tokens, unknown scopes, limits) and for imports into a hubkit that
already holds data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hubkit.importers.jupyterhub.actions import (
    AddMembers,
    CreateServer,
    CreateUser,
    ImportToken,
    PromoteAdmin,
    SetGroupProperties,
    SetServerOptions,
    SetUserInfo,
)
from hubkit.importers.jupyterhub.plan import HubkitState, Policy, plan_import
from hubkit.importers.jupyterhub.source import JHGroup, JHServer, JHToken, JHUser, JupyterHubData
from jupyterhub.utils import hash_token

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def data(**kw: object) -> JupyterHubData:
    base: dict[str, object] = {
        "revision": "test",
        "users": (JHUser("alice", False), JHUser("bob", True)),
        "groups": (),
        "servers": (),
        "tokens": (),
        "roles": {},
        "services": (),
    }
    base.update(kw)
    return JupyterHubData(**base)  # type: ignore[arg-type]


def empty() -> HubkitState:
    return HubkitState(users={}, groups={}, servers={}, token_hashes={})


def token(n: int, user: str | None = "alice", **kw: object) -> JHToken:
    fields: dict[str, object] = {
        "id": n,
        "hashed": hash_token(f"secret-{n}-xxxxxxxx", rounds=1, salt=8),
        "prefix": "secr",
        "user": user,
        "service": None,
        "client_id": "jupyterhub",
        "scopes": ("inherit",),
    }
    fields.update(kw)
    return JHToken(**fields)  # type: ignore[arg-type]


def plan(d: JupyterHubData, state: HubkitState | None = None, policy: Policy | None = None):  # type: ignore[no-untyped-def]
    return plan_import(d, state or empty(), source="test", policy=policy or Policy(), now=NOW)


def test_only_tokens_users_made_are_imported() -> None:
    p = plan(
        data(
            tokens=(
                token(1),
                token(2, client_id="jupyterhub-user-alice"),
                token(3, note="Server at /user/alice/"),
                token(4, client_id=None),
                token(5, expires_at=NOW - timedelta(seconds=1)),
                token(6, user=None, service="culler"),
                token(7, hashed="bcrypt$whatever"),
                token(8, expires_at=NOW + timedelta(days=1)),
            )
        )
    )
    assert [a.jupyterhub_id for a in p.actions if isinstance(a, ImportToken)] == [1, 8]
    reasons = {s.what.split(" ")[0]: s.reason for s in p.skipped}
    assert "OAuth access token of client 'jupyterhub-user-alice'" in reasons["#2"]
    assert "server JupyterHub started" in reasons["#3"]
    assert reasons["#4"].startswith("stale")
    assert reasons["#5"].startswith("expired at")
    assert "service 'culler'" in reasons["#6"]
    assert "not in a format hubkit can check" in reasons["#7"]
    assert p.tally["tokens"].created == 2 and p.tally["tokens"].skipped == 6


def test_scopes_hubkit_does_not_know_are_left_out_and_said() -> None:
    p = plan(
        data(
            tokens=(
                token(1, scopes=("read:users!user=alice", "custom:grader:submit")),
                token(2, scopes=("custom:grader:submit",)),
                token(3, scopes=("admin:users",)),
            )
        )
    )
    imported = {a.jupyterhub_id: a.scopes for a in p.actions if isinstance(a, ImportToken)}
    assert imported == {1: ("read:users!user=alice",), 3: ("admin:users",)}
    assert any("custom:grader:submit" in n and "#1" in n for n in p.notes)
    assert any(s.what.startswith("#2") and "none of its scopes" in s.reason for s in p.skipped)
    # alice is no admin: her admin:users token is kept as JupyterHub had it, and the report says it is capped
    assert any("#3" in n and "does not hold admin:users" in n for n in p.notes)


def test_into_a_hubkit_that_holds_data_already() -> None:
    state = HubkitState(
        users={"alice": (False, {"email": "a@old"}), "bob": (True, None)},
        groups={"students": ({"term": 1, "room": "A"}, {"bob"})},
        servers={("alice", "nb1"): {}, ("alice", "nb2"): {"cpus": 4}},
        token_hashes={},
    )
    d = data(
        users=(JHUser("alice", True, user_info={"email": "a@new"}), JHUser("bob", False)),
        groups=(JHGroup("students", {"term": 3}, ("alice", "bob")),),
        servers=(
            JHServer("alice", "nb1", user_options={"profile": "gpu"}),
            JHServer("alice", "nb2", user_options={"cpus": 2}),
            JHServer("alice", "", user_options={"image": "x"}),
            JHServer("bob", ""),
        ),
    )
    p = plan(d, state)
    assert PromoteAdmin("alice") in p.actions
    assert SetUserInfo("alice", {"email": "a@new"}) in p.actions
    assert not any(isinstance(a, PromoteAdmin) and a.name == "bob" for a in p.actions)  # never demoted either
    assert SetGroupProperties("students", {"term": 3, "room": "A"}) in p.actions
    assert AddMembers("students", ("alice",)) in p.actions
    assert SetServerOptions("alice", "nb1", {"profile": "gpu"}) in p.actions
    assert not any(isinstance(a, SetServerOptions) and a.name == "nb2" for a in p.actions)  # has options
    assert CreateServer("alice", "", "", {"image": "x"}) in p.actions
    assert not any(isinstance(a, CreateServer) and a.user == "bob" for a in p.actions)  # nothing to carry
    assert p.tally["users"].updated == 1 and p.tally["users"].unchanged == 1


def test_named_server_policy_and_names() -> None:
    d = data(
        servers=(
            JHServer("alice", "one"),
            JHServer("alice", "two"),
            JHServer("alice", "my notebook"),
            JHServer("carol", "x"),
        )
    )
    off = plan(d, policy=Policy(allow_named_servers=False))
    assert not [a for a in off.actions if isinstance(a, CreateServer)]
    assert "allow_named_servers = false" in {s.what: s.reason for s in off.skipped}["alice/one"]
    limited = plan(d, policy=Policy(named_server_limit=1))
    assert [a.name for a in limited.actions if isinstance(a, CreateServer)] == ["one"]
    reasons = {s.what: s.reason for s in limited.skipped}
    assert "named_server_limit_per_user" in reasons["alice/two"]
    assert "invalid server name" in reasons["alice/my notebook"]
    assert "user 'carol' was skipped" in reasons["carol/x"]  # carol is not among the users at all


def test_refused_names_take_their_belongings_along() -> None:
    d = data(
        users=(JHUser("alice", False), JHUser("../etc", False)),
        groups=(JHGroup("a&b", {}, ("alice",)), JHGroup("ok", {}, ("alice", "../etc"), roles=("admin",))),
        tokens=(token(1, user="../etc"),),
    )
    p = plan(d)
    kinds = {(s.kind, s.what) for s in p.skipped}
    assert {("user", "../etc"), ("group", "a&b"), ("token", "#1 (secr…) of '../etc'")} <= kinds
    assert AddMembers("ok", ("alice",)) in p.actions
    assert any("role 'admin' of group 'ok'" in n for n in p.notes)


def test_a_second_plan_over_the_result_is_empty() -> None:
    d = data(
        groups=(JHGroup("g", {"k": 1}, ("alice",)),),
        servers=(JHServer("alice", "nb", user_options={"o": 1}),),
        tokens=(token(1),),
    )
    first = plan(d)
    assert first.actions
    after = HubkitState(
        users={"alice": (False, None), "bob": (True, None)},
        groups={"g": ({"k": 1}, {"alice"})},
        servers={("alice", "nb"): {"o": 1}},
        token_hashes={d.tokens[0].hashed: 17},
    )
    second = plan(d, after)
    assert second.actions == [] and second.skipped == []
    revoked = plan(d, HubkitState(after.users, after.groups, after.servers, {d.tokens[0].hashed: None}))
    assert revoked.actions == [] and "revoked in hubkit" in revoked.skipped[0].reason


def test_user_names_logins_would_spell_differently_are_skipped() -> None:
    d = data(users=(JHUser("Alice", False), JHUser("bob", False), JHUser("cafe\u0301", False)))
    p = plan(d)
    reasons = {s.what: s.reason for s in p.skipped}
    assert "name this user 'alice'" in reasons["Alice"] and "normalize_usernames" in reasons["Alice"]
    assert "name this user 'café'" in reasons["cafe\u0301"]  # NFC
    kept = plan(d, policy=Policy(lower_usernames=False))
    assert [a.name for a in kept.actions if isinstance(a, CreateUser)] == ["Alice", "bob"]
