"""The JupyterHub-compatible REST API under ``<base>hub/api``, one module per resource."""
