"""Benchmarks: run by hand, each prints one JSON line per figure."""
