"""Loopai Hub: real-time pub/sub hub and REST API for Loopai program artifacts."""

__version__ = "0.1.0"
