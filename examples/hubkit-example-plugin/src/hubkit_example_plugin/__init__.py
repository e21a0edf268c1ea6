"""An example hubkit plugin: route audit log, a username rule and an environment amendment."""

from .plugin import AuditConfig, AuditHooks, AuditPlugin, plugin

__all__ = ["AuditConfig", "AuditHooks", "AuditPlugin", "plugin"]
