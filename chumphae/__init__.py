"""Smart Chumphae: keeps dependent patients in Chumphae district safe."""

__version__ = "0.1.0"
