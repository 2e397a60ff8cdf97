"""Alerts as state: open → acknowledged → resolved, one per patient and type, escalated on a timer."""
