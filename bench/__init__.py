"""Benchmarks of the image broker (not tests): ``make bench`` runs ``bench/run.py``."""
