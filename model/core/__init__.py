"""Inference only: the network, its weights, the readings and the restorer. Imports nothing else from model/."""
