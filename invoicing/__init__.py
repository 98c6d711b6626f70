"""Batch invoicing: what the server and the worker share (layers in docs/ARCHITECTURE.md)."""
