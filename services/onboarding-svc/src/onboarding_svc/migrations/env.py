from onboarding_svc.models import metadata
from stellara_kit.migrations import run_env

run_env(metadata)
