"""Ampere: a Lightning Network node and library."""

__version__ = "0.1.0"
