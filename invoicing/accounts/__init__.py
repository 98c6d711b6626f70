"""Accounts: users, memberships, passwords, sessions, API tokens and device cookies."""
