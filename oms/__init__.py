"""The order-management service."""
