"""PostgreSQL storage: the pool, migrations and one repository module per aggregate."""
