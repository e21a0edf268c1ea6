"""Configuration: typed models (:mod:`.models`) and the loader that merges file, environment and CLI flags."""

from .models import AuthConfig, CullerConfig, HubConfig, ProxyConfig, Settings, SpawnerConfig

__all__ = ["AuthConfig", "CullerConfig", "HubConfig", "ProxyConfig", "Settings", "SpawnerConfig"]
