"""Evaluation: verification (LFW protocol) and, later, 1:N identification and group differentials."""
