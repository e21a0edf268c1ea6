"""The hub as an OAuth2 provider for user servers (authorization-code grant with PKCE, JupyterHub B)."""
