"""Tests of the local Functions host and the `make dev` runner."""
