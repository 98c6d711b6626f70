"""Development tools, not the product: `invoicing dev`, embedded services, demo data, benchmarks."""
