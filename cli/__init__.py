"""The ``invoicing`` command line."""
