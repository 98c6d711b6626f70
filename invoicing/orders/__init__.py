"""Sales orders and customers: the order list, its count and totals, and their JSON."""
