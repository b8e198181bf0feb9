"""Evaluation: damage suites, classical baselines, scoring and the estimators' checks."""
