"""Adapters to systems outside the process: the Kubernetes API and the MLflow registry (no commands here)."""
