"""The ``hubkit`` command: run the hub, ``--generate-config``, ``db upgrade|backup|restore``, ``token``,
``import-jupyterhub``, ``plugins``, ``config show``. Configuration and plugin errors print one line naming
the problem and exit 2."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError, HubkitError, PluginError

EXIT_CONFIG = 2


def _common(parser: argparse.ArgumentParser) -> None:
    S = argparse.SUPPRESS  # set by the main parser or a subcommand, whichever has it
    parser.add_argument("-f", "--config", default=S, help="TOML config file")
    parser.add_argument("--ip", default=S, help="public address ([hub] ip)")
    parser.add_argument("--port", type=int, default=S, help="public port ([hub] port)")
    parser.add_argument("--ssl-key", default=S, help="TLS key file ([hub] ssl_key)")
    parser.add_argument("--ssl-cert", default=S, help="TLS certificate file ([hub] ssl_cert)")
    parser.add_argument("--db-url", default=S, help="database URL ([hub] db_url)")
    parser.add_argument("--data-dir", default=S, help="data directory ([hub] data_dir)")
    parser.add_argument("--base-url", default=S, help="URL prefix ([hub] base_url)")
    parser.add_argument(
        "--cookie-secret-file", default=S, help="cookie secret file ([hub] cookie_secret_file)"
    )
    parser.add_argument("--admin-users", default=S, help="comma-separated admin users ([hub] admin_users)")
    parser.add_argument("--log-level", default=S, help="DEBUG, INFO, WARNING... ([hub] log_level)")
    parser.add_argument("--authenticator", default=S, help="authenticator backend ([auth] backend)")
    parser.add_argument("--spawner", default=S, help="spawner backend ([spawner] backend)")
    parser.add_argument("--proxy", default=S, help="proxy backend ([proxy] backend)")


_FLAG_KEYS = {
    "ip": ("hub", "ip"),
    "port": ("hub", "port"),
    "ssl_key": ("hub", "ssl_key"),
    "ssl_cert": ("hub", "ssl_cert"),
    "db_url": ("hub", "db_url"),
    "data_dir": ("hub", "data_dir"),
    "base_url": ("hub", "base_url"),
    "cookie_secret_file": ("hub", "cookie_secret_file"),
    "log_level": ("hub", "log_level"),
    "authenticator": ("auth", "backend"),
    "spawner": ("spawner", "backend"),
    "proxy": ("proxy", "backend"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hubkit", description="hubkit: a pluggable multi-user notebook hub")
    _common(parser)
    parser.add_argument(
        "--generate-config",
        nargs="?",
        const="hubkit.toml",
        metavar="PATH",
        help="write a commented config with every installed plugin's options (default hubkit.toml, - for stdout)",
    )
    parser.add_argument("--force", action="store_true", help="with --generate-config: overwrite")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run the hub as N replica processes sharing its port (PostgreSQL only; see docs/deploy-ha.md)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    db = sub.add_parser("db", help="database commands")
    dbsub = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    up = dbsub.add_parser("upgrade", help="create or migrate the schema (core and plugin branches)")
    _common(up)
    bk = dbsub.add_parser("backup", help="copy the SQLite database, consistently, while the hub runs")
    _common(bk)
    bk.add_argument("dest", help="backup file to write, or a directory for hubkit-<time>.sqlite")
    rs = dbsub.add_parser(
        "restore", help="replace the SQLite database with a backup (the hub must be stopped)"
    )
    _common(rs)
    rs.add_argument("backup", help="backup file made by `hubkit db backup`")
    imp = sub.add_parser("import-jupyterhub", help="copy users, groups, servers and tokens from JupyterHub")
    _common(imp)
    imp.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="DB_URL",
        help="JupyterHub's database, e.g. sqlite:///jupyterhub.sqlite or postgresql://user@host/jupyterhub",
    )
    imp.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    imp.add_argument("--json", action="store_true", help="print the report as JSON")
    tok = sub.add_parser("token", help="issue an API token for a user and print it")
    _common(tok)
    tok.add_argument("user")
    tok.add_argument("--scopes", nargs="+", default=["inherit"], help="scopes (default: inherit the user's)")
    tok.add_argument("--note", default="issued by hubkit token")
    tok.add_argument("--expires-in", type=float, default=None, help="seconds until the token expires")
    tok.add_argument("--create", action="store_true", help="create the user if it does not exist")
    pl = sub.add_parser("plugins", help="installed plugins, their hooks and backends")
    _common(pl)
    cfg = sub.add_parser("config", help="configuration commands")
    cfgsub = cfg.add_subparsers(dest="config_command", metavar="CONFIG_COMMAND", required=True)
    show = cfgsub.add_parser("show", help="the effective configuration (secrets masked)")
    _common(show)
    _add_installed_commands(sub)
    return parser


def _add_installed_commands(sub: Any) -> None:
    """Subcommands from other distributions (e.g. ``hubkit rehearse``): entry-point group ``hubkit.commands``,
    each a callable that adds its parser to ``sub`` and sets the default ``hubkit_command`` to a function of
    the parsed arguments returning the exit code. Such a command runs without loading the hub's config."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="hubkit.commands"):
        try:
            ep.load()(sub)
        except Exception as exc:  # a broken add-on must not take the hub's own CLI down
            print(f"hubkit: warning: command {ep.name!r} ({ep.value}) not loaded: {exc}", file=sys.stderr)


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, (section, key) in _FLAG_KEYS.items():
        if hasattr(args, attr):
            out.setdefault(section, {})[key] = getattr(args, attr)
    if hasattr(args, "admin_users"):
        out.setdefault("hub", {})["admin_users"] = [
            u.strip() for u in args.admin_users.split(",") if u.strip()
        ]
    return out


def load(args: argparse.Namespace) -> Any:
    from .config.loader import load_settings

    return load_settings(getattr(args, "config", None), overrides=overrides_from(args))


def _fail(msg: str, code: int = EXIT_CONFIG) -> int:
    print(f"hubkit: error: {msg}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(raw)
    args.raw_argv = raw
    try:
        return _dispatch(args)
    except (ConfigError, PluginError) as exc:
        return _fail(str(exc))
    except HubkitError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from . import commands

    installed = getattr(args, "hubkit_command", None)
    if installed is not None:
        return int(installed(args))
    if args.generate_config is not None:
        return commands.generate_config(args.generate_config, force=args.force)
    settings = load(args)
    from .runtime.logs import configure_logging

    configure_logging(settings)
    if args.command == "db":
        if args.db_command == "backup":
            return commands.db_backup(settings, args.dest)
        if args.db_command == "restore":
            return commands.db_restore(settings, args.backup)
        return asyncio.run(commands.db_upgrade(settings))
    if args.command == "import-jupyterhub":
        return asyncio.run(
            commands.import_jupyterhub(settings, args.source, dry_run=args.dry_run, json_out=args.json)
        )
    if args.command == "token":
        return asyncio.run(
            commands.token(
                settings,
                args.user,
                args.scopes,
                note=args.note,
                expires_in=args.expires_in,
                create=args.create,
            )
        )
    if args.command == "plugins":
        return commands.plugins(settings)
    if args.command == "config":
        print(commands.config_show(settings))
        return 0
    if args.workers is not None:
        from .runtime.workers import run_workers

        return run_workers(settings, args.raw_argv, args.workers)
    from .runtime.serve import serve

    return serve(settings)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2)


if __name__ == "__main__":
    sys.exit(main())
