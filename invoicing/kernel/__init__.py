"""The shared kernel: errors with stable codes, settings, who is acting, JSON value formats."""
