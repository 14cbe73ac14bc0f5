"""``python -m onboarding_svc.migrate``: bring the database to the newest revision (as the schema owner)."""

from __future__ import annotations

import sys
from pathlib import Path

from onboarding_svc.settings import Settings
from stellara_kit.migrations import main

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

if __name__ == "__main__":
    sys.exit(main(MIGRATIONS, Settings().owner_database_url))
