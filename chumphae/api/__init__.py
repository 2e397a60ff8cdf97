"""The caregiver backend's HTTP and WebSocket interfaces (FastAPI)."""
