"""Provider presets: each needs only a client id and secret (plus a tenant/domain where the provider has one)."""
