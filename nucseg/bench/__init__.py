"""Benchmarks that print numbers: input pipeline, memory, nets, slides."""
