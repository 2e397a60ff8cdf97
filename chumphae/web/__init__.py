"""The caregiver page: a built bundle (from `web/`, output in `dist/`) served by the backend."""
