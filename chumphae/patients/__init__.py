"""Patients as the volunteers' app and the hospital see them: status, visits, bands, zones, search, 43-file import."""
