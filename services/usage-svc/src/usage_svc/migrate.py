"""``python -m usage_svc.migrate``: bring the database to the newest revision (as the schema owner)."""

from __future__ import annotations

import sys
from pathlib import Path

from stellara_kit.migrations import main
from usage_svc.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

if __name__ == "__main__":
    sys.exit(main(MIGRATIONS, Settings().owner_database_url))
