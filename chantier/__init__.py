"""Chantier Connecté: shared contracts and the `chantier` command."""

__version__ = "0.1.0"
