"""Vigil: metrics as code, anomaly detection and alerting."""

__version__ = "0.1.0"
