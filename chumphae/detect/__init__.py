"""The detect step: pure detectors over a patient's recent state (filled in below)."""
