"""Training: the loop, the losses and the quick validation it runs."""
