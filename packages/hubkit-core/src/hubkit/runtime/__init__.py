"""The running hub: the :class:`~hubkit.runtime.hub.Hub` object and its background tasks."""
