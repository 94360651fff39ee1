"""Benchmarks of the fleet (DESIGN.md, "Scale and speed"): run as scripts, never as timed tests."""
