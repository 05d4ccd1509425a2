"""Checks of the infrastructure as code in infra/."""
