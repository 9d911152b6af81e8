"""Benchmark suite for the ingest service: `python -m tests.bench [--quick] [--only ...]`.

Every figure is measured against a real uvicorn server and printed beside baselines measured
in the same run, so the ratios stay meaningful on a shared machine.
"""
