"""Email delivery: SMTP settings, messages for exports and reports, the workspace's own recipients."""
