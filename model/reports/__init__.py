"""The documents: docs/QUALITY.md, docs/ESTIMATORS.md, their figures and their provenance."""
