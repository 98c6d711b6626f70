"""Infrastructure: PostgreSQL pool, logins and migrations; Redis queue, keys and limits; in-process gates."""
