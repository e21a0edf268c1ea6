"""Importers: bring another hub's state into hubkit's database (``hubkit import-jupyterhub``)."""
