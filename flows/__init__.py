"""Shipped course files."""
