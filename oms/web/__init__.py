"""The OMS's built-in, read-only web page (``/dashboard``) and what it needs (the equity curve, static files)."""
