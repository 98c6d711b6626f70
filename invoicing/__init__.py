"""Batch invoicing: the domain and storage shared by the server and the worker."""
