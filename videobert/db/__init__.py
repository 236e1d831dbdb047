"""Tracking database: models, engine and migrations, and every query (repository)."""

from videobert.db.engine import Database, open_database
from videobert.db.models import StageStatus

__all__ = ["Database", "StageStatus", "open_database"]
