"""Evaluation: metrics, feature extraction, the protocols of a recipe, reports and figures."""
