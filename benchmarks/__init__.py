"""Benchmarks of the dlcli engine (and PyTorch CPU, for comparison): ``python -m benchmarks``.

Kept apart from the tests: they print figures and assert nothing about time.
"""
