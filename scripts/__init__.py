"""Maintenance scripts, run from the repository root (``python -m scripts.device_bundle``): they prepare
device runs and write the files the package ships (``scripts/ship_calibration.py``)."""
