"""hubkit: a pluggable, multi-user notebook hub.

Plugin authors need ``hookimpl`` plus the data objects in :mod:`hubkit.interfaces` and errors in
:mod:`hubkit.errors`.
"""

from .errors import AuthFailed, HubkitError, InvalidOptions, PluginError, SpawnFailed
from .plugins import hookimpl

__version__ = "0.1.0"
# The JupyterHub API version hubkit speaks; stock JupyterHub clients parse it as PEP 440.
JUPYTERHUB_COMPAT_VERSION = "6.1.1"

__all__ = [
    "JUPYTERHUB_COMPAT_VERSION",
    "AuthFailed",
    "HubkitError",
    "InvalidOptions",
    "PluginError",
    "SpawnFailed",
    "__version__",
    "hookimpl",
]
