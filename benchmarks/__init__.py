"""Benchmarks: measured figures written to benchmarks/results/ (never timed asserts in tests)."""
