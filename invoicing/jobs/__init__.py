"""Batch jobs: their SQL, every status change, the use cases (submit, run, cancel, sweep) and their JSON."""
