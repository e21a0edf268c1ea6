"""``hubkit-singleuser``: start JupyterLab (or Notebook 7, or a plain Jupyter Server) with the extension on.

Pick the front end with ``HUBKIT_SINGLEUSER_APP`` (or ``JUPYTERHUB_SINGLEUSER_APP``): ``lab`` (default when
JupyterLab is installed), ``notebook``, ``server``. All other arguments go to the Jupyter app.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence

from .hubenv import HubEnv, HubEnvError

APPS = {
    "lab": "jupyterlab.labapp:LabApp",
    "notebook": "notebook.app:JupyterNotebookApp",
    "server": "jupyter_server.serverapp:ServerApp",
}


def choose_app(env: dict[str, str] | None = None) -> str:
    e = os.environ if env is None else env
    raw = (e.get("HUBKIT_SINGLEUSER_APP") or e.get("JUPYTERHUB_SINGLEUSER_APP") or "").strip()
    aliases = {"jupyterlab": "lab", "jupyter-lab": "lab", "notebook7": "notebook", "jupyter_server": "server"}
    wanted = aliases.get(raw.lower(), raw.lower())
    if wanted not in APPS:
        wanted = raw
    if wanted and wanted not in APPS:
        # dotted path "pkg.mod:Class" or "pkg.mod.Class"
        return wanted if ":" in wanted else ":".join(wanted.rsplit(".", 1))
    if not wanted:
        wanted = "lab" if importlib.util.find_spec("jupyterlab") else "server"
    return APPS[wanted]


def skip_slow_optional_imports(env: dict[str, str] | None = None) -> list[str]:
    """Keep optional modules that cost seconds at import and that a single-user server never uses out.

    ``rfc3987_syntax`` (pulled in by jsonschema's format checkers via jupyter_events) compiles a parser grammar
    on import: ~1 s on a fast idle machine, 5+ s on a loaded one, i.e. a large part of server start-up. It only
    backs the JSON-schema formats ``iri``/``iri-reference``, which no Jupyter event schema uses. jsonschema
    treats it as optional (ImportError → those two formats are not checked). Opt out with
    ``HUBKIT_SINGLEUSER_IRI_FORMATS=1``.
    """
    e = os.environ if env is None else env
    if e.get("HUBKIT_SINGLEUSER_IRI_FORMATS", "") in ("1", "true", "yes"):
        return []
    skipped = []
    for name in ("rfc3987_syntax",):
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # makes "import name" raise ImportError
            skipped.append(name)
    return skipped


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    skip_slow_optional_imports()
    try:
        HubEnv.from_environ()
    except HubEnvError as e:
        print(f"hubkit-singleuser: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    target = choose_app()
    module, _, cls_name = target.partition(":")
    try:
        mod = __import__(module, fromlist=[cls_name])
        app_cls = getattr(mod, cls_name)
    except (ImportError, AttributeError) as e:
        print(f"hubkit-singleuser: cannot load the Jupyter app {target!r}: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    app_cls.launch_instance(argv=["--ServerApp.jpserver_extensions=hubkit_singleuser=True", *args])
