"""Invoices: the COPY path, deciding orders with the rules, invoicing one order, and their JSON."""
