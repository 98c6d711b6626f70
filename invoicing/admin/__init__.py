"""What admins see across their organization's jobs: the Operations page's reads."""
