"""The hub's web layer: HTML pages (:mod:`.pages`), templates, static files, rendering, XSRF defence and the
request middleware. The REST API is :mod:`hubkit.api`; both are mounted by :func:`hubkit.runtime.app.create_app`.
"""
