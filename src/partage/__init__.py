"""Partage — territorial health-data sharing platform."""

__version__ = "0.1.0"
