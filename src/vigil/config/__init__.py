"""Configuration as code: schema, loading and validation."""

from vigil.config.loader import load_project
from vigil.config.project import Dataset, Metric, Project

__all__ = ["Dataset", "Metric", "Project", "load_project"]
