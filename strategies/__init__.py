"""Strategy processes and their SDK."""
