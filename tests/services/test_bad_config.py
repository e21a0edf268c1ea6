"""A bad ``[[services]]`` table stops ``hubkit -f`` at startup: exit status 2, one line naming the file, the
key and the reason, no traceback, the token never echoed, and nothing started or written."""

from __future__ import annotations

import subprocess

import pytest
from svchub import BIN

pytestmark = pytest.mark.timeout(120)

TOKEN = "do-not-print-me-7f3a9c"


@pytest.mark.parametrize(
    ("services", "needle"),
    [
        (
            '[[services]]\nname = "culler"\n\n[[services]]\nname = "culler"\n',
            "services: services.0 and services.1 have the same name 'culler'",
        ),
        (
            '[[services]]\nname = "../../hub/login"\n',
            "services.0.name: a service name is 1-100 ASCII letters",
        ),
        ('[[services]]\nname = "<script>"\n', "services.0.name: a service name is"),
        (
            '[[services]]\nname = "dash"\nurl = "127.0.0.1:10101"\n',
            "services.0.url: url must start with http:// or https:// and name a host",
        ),
        (
            f'[[services]]\nname = "a"\napi_token = "{TOKEN}"\n[[services]]\nname = "b"\napi_token = "{TOKEN}"\n',
            "services: services.0 and services.1 have the same api_token",
        ),
        # checked once parsed, against the scope names the hub knows: the key is named, not the file
        ('[[services]]\nname = "c"\nscopes = ["delete:everything"]\n', "services.0.scopes: unknown scope"),
    ],
)
def test_bad_services_stop_the_hub_at_startup(tmp_path, services, needle):
    cfg = tmp_path / "hubkit.toml"  # port 0: refused before it would bind anything
    cfg.write_text(f'[hub]\nport = 0\ndata_dir = "{tmp_path}"\n[proxy]\nbackend = "none"\n\n' + services)
    r = subprocess.run(
        [str(BIN / "hubkit"), "-f", str(cfg)],
        capture_output=True,
        text=True,
        timeout=90,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "HUBKIT_PLUGINS": ""},
        cwd=tmp_path,
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    where = "" if "scopes" in needle else f"{cfg}: "
    assert f"hubkit: error: {where}{needle}" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and TOKEN not in r.stderr + r.stdout
    assert not (tmp_path / "hubkit.sqlite").exists()
