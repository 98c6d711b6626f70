"""Pure business rules: no I/O here, everything is testable without a database."""
