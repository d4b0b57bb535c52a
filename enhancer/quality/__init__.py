"""Measuring quality: metrics against a reference, benchmarks, side-by-side comparisons."""
