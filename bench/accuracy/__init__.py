"""Accuracy: where the thresholds come from and which embedding recipe verifies and identifies best."""
