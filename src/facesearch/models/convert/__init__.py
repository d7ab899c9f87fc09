"""Conversion of dlib's serialized .dat networks to ONNX: the reader, the two graph builders, the file cache."""
