"""hubkit-singleuser: a Jupyter Server extension (+ launcher) that speaks the hub's single-user contract.

Enable it with ``hubkit-singleuser`` (runs JupyterLab, Notebook 7 or a plain server with it), or in any
environment with ``--ServerApp.jpserver_extensions='{"hubkit_singleuser": true}'``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "hubkit_singleuser.extension"}]
