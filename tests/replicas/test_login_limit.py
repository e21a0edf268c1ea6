"""Failed logins count across hub replicas (two real hub processes on one PostgreSQL database): guesses spread
over the replicas meet the same limit as guesses sent to one hub, and the rules of a single hub hold (another
address is not refused; a login that succeeds starts its count again)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.append(str(Path(__file__).parent))  # unique module names; never shadow others
from replicahub import Replica, replica_pair

pytestmark = [pytest.mark.timeout(200)]

LIMIT = 4
PASSWORD = "correct horse"
HUB = f"login_rate_limit = {LIMIT}\nlogin_rate_limit_per_address = 50"
AUTH = f'[auth]\nbackend = "dummy"\n\n[auth.dummy]\npassword = "{PASSWORD}"'


def _login(rep: Replica, name: str, password: str, source: str = "127.0.0.1") -> int:
    """The login form as a browser submits it, from ``source`` (a loopback address of its own)."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=f"http://127.0.0.1:{rep.port}", transport=transport, timeout=30) as c:
        page = c.get("/hub/login")
        m = re.search(r'name="_xsrf" value="([0-9a-f]+)"', page.text)
        assert m, page.text[:300]
        r = c.post("/hub/login", data={"username": name, "password": password, "_xsrf": m.group(1)})
        return r.status_code


def test_failed_logins_count_across_replicas(postgres_cluster: Any, tmp_path: Path) -> None:
    with replica_pair(postgres_cluster, tmp_path, hub=HUB, auth=AUTH) as (_reps, a, b, db, _token):
        # wrong passwords for one name from one address, alternating between the replicas: each replica alone
        # would allow LIMIT of them (2 * LIMIT in all); together they allow LIMIT
        answers = [_login((a, b)[i % 2], "victim", "wrong") for i in range(LIMIT + 2)]
        assert answers[:LIMIT] == [403] * LIMIT, answers
        assert answers[LIMIT:] == [429, 429], answers
        # the right password from that address waits too; from another address it is never refused
        assert _login(b, "victim", PASSWORD) == 429
        assert _login(a, "victim", PASSWORD, source="127.0.0.2") == 302
        # other names from the failing address are not limited by victim's count
        assert _login(b, "other", PASSWORD) == 302
        # a success starts the (user, address) count again: LIMIT more wrong passwords before the next refusal
        assert _login(a, "third", "wrong", source="127.0.0.3") == 403
        assert _login(b, "third", PASSWORD, source="127.0.0.3") == 302
        again = [_login((a, b)[i % 2], "third", "wrong", source="127.0.0.3") for i in range(LIMIT + 1)]
        assert again == [403] * LIMIT + [429], again
        rows = postgres_cluster.psql("SELECT count(*) FROM login_failures", db).strip()
        assert int(rows) > 0  # counted in the database, where every replica reads
