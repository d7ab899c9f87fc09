"""Face detection: dlib's HOG and CNN (MMOD) detectors, 5-point landmarks, and their batched GPU form."""
