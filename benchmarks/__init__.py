"""Benchmarks (scripts; each writes its JSON to results/, rendered by render.py)."""
