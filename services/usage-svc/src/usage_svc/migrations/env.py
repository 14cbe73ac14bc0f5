from stellara_kit.migrations import run_env
from usage_svc.models import metadata

run_env(metadata)
