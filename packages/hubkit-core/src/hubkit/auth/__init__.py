"""Authentication and authorization primitives: tokens, scopes, sessions. Framework-free."""
