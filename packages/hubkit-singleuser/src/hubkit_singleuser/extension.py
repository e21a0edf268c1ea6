"""The Jupyter Server extension: configures the server from the hub's environment before it binds.

Linking happens before the server builds its identity provider and web app, so ip/port/base_url and the
hub identity provider are in place by then; loading starts the activity reporter.
"""

from __future__ import annotations

from typing import Any

from . import __version__, logscrub, runtime
from .activity import ActivityReporter
from .identity import HubIdentityProvider

VERSION_HEADER = "6.1.1"  # PEP 440 and JupyterHub-compatible: stock clients parse this header


def _link_jupyter_server_extension(serverapp: Any) -> None:
    logscrub.install()
    env = runtime.hub().env
    serverapp.ip = env.bind_ip
    serverapp.port = env.bind_port
    serverapp.port_retries = 0
    serverapp.base_url = env.service_prefix
    # Never a browser, and never the "No web browser found ... ?token=" lines: LabApp copies its own
    # open_browser (default: ServerApp's *config*, else True) onto the server after this link, so the config
    # value must say no too, not only the attribute.
    serverapp.config.ServerApp.open_browser = False
    serverapp.open_browser = False
    serverapp.no_browser_open_file = True
    serverapp.allow_remote_access = True
    serverapp.trust_xheaders = True
    serverapp.quit_button = False
    serverapp.identity_provider_class = HubIdentityProvider
    if env.default_url:
        serverapp.default_url = env.default_url
    if env.root_dir:
        serverapp.root_dir = env.root_dir
    # Into the config as well (as open_browser above): LabApp applies the server's config once more after this
    # link, and a ``c.ServerApp.tornado_settings`` there would replace the attribute, dropping the version
    # header and the hub keys (JupyterLab's hub menu, and its blanking of the page's token).
    settings = with_hub_settings(serverapp.tornado_settings, env)
    serverapp.config.ServerApp.tornado_settings = settings
    serverapp.tornado_settings = settings
    serverapp.server_name = env.server_name


def with_hub_settings(settings: dict[str, Any], env: Any) -> dict[str, Any]:
    """``settings`` (tornado's) with what the hub integration needs; the server's own values win where both set
    one (headers, page config), except the hub's identity keys."""
    merged = dict(settings)
    headers = dict(merged.get("headers", {}))
    headers.setdefault("X-JupyterHub-Version", VERSION_HEADER)
    headers.setdefault("X-Hubkit-Singleuser", __version__)
    merged["headers"] = headers
    # A user's server is not where JupyterLab gets rebuilt: without this, every Lab start asks the server for
    # its build status (GET /lab/api/build), seconds of CPU that delay the settings Lab waits on. An explicit
    # page_config_data setting in the server's config still wins.
    page = dict(merged.get("page_config_data", {}))
    page.setdefault("buildCheck", False)
    page.setdefault("buildAvailable", False)
    merged["page_config_data"] = page
    # JupyterLab's hub menu (Control Panel / Log Out) reads these
    merged.update(hub_prefix=env.hub_prefix, hub_host=env.host, user=env.user)
    return merged


def _load_jupyter_server_extension(serverapp: Any) -> None:
    hub = runtime.hub()
    reporter = ActivityReporter(serverapp, hub.env, hub.client)
    serverapp.web_app.settings["hubkit_activity_reporter"] = reporter
    reporter.start()
    serverapp.log.info(
        "hubkit-singleuser: serving %s for %s; activity every %gs to %s",
        hub.env.service_prefix,
        hub.env.user or "?",
        hub.env.activity_interval,
        hub.env.activity_url or "(off)",
    )
