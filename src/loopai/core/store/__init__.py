"""Persistence: one small SQL layer over SQLite (embedded default) and PostgreSQL."""

from loopai.core.store.database import Database, connect_database

__all__ = ["Database", "connect_database"]
