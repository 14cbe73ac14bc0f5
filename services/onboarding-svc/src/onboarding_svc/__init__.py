"""Stellara onboarding-svc: Onboarding workflows and admin invitations."""
