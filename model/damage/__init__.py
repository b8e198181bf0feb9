"""Synthetic and camera-pipeline damage, for training and evaluation."""
