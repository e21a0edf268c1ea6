"""The built-in idle culler (no separate service): see :mod:`hubkit.culler.policy` for the rules."""
