"""Hub services (JupyterHub's ``services``): API clients with a token of their own, routed at
``/services/<name>/`` when they have a URL, able to log users in through the hub's OAuth provider, and, when
they have a ``command``, run and kept running by the hub.

* :mod:`.registry`: ``[[services]]`` written to the database at every start (rows, hashed tokens, OAuth clients);
* :mod:`.env`: the environment a managed service gets (JupyterHub's variables);
* :mod:`.supervisor` + :mod:`.process`: the duty that starts managed services, restarts them with backoff and
  stops them when the hub stops.

The services' REST API is :mod:`hubkit.services.hub_services`; their routes come from
:mod:`hubkit.routing.reconcile`, like user servers'.
"""
