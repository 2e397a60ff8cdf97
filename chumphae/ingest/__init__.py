"""Data in: gateway messages parsed, checked, stored once, acknowledged after commit."""
