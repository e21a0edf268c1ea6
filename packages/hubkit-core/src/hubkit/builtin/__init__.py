"""Built-in plugins, registered exactly like third-party ones (with ``trylast`` where they are fallbacks)."""
