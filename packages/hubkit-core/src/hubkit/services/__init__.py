"""The hub's operations, framework-free: log in and out (:mod:`.login`), users (:mod:`.users`), groups, tokens,
servers (load and authorise, named-server rules, options, start, stop, show), activity, hub services and the
admin listing. Each function takes a :class:`~hubkit.services.context.ServiceContext` and the calling
:class:`~hubkit.auth.identity.Identity` where permissions matter, and raises the hub's own errors
(:mod:`hubkit.errors`). The REST API (:mod:`hubkit.api`) and the pages (:mod:`hubkit.web.pages`) are thin adapters
over them."""
