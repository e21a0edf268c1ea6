"""hubkit rehearse: rehearse a class of N users against a hub (hubkit or JupyterHub) before the class does it.

Modules, one job each: :mod:`plan` (who arrives when, bounds), :mod:`browser` (one person's HTTP state, the
one-origin rule), :mod:`session` (the steps of one visit), :mod:`kernel` (kernel websocket), :mod:`admin`
(users and tokens through the REST API), :mod:`runner` (arrivals, Ctrl-C, cleanup), :mod:`record` (what is
recorded), :mod:`stats` / :mod:`report` / :mod:`plots` / :mod:`htmlreport` (figures and their renderings),
:mod:`live` (the live view), :mod:`cli`.
"""

__version__ = "0.1.0"
