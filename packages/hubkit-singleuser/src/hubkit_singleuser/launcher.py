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


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
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
