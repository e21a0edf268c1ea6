"""An example hubkit plugin: route audit log, a username rule and an environment amendment."""

from .plugin import AuditConfig, AuditPlugin, plugin

__all__ = ["AuditConfig", "AuditPlugin", "plugin"]
