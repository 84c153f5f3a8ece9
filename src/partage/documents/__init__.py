"""Shared documents: registry (metadata), repository (encrypted content), deposit, search."""
