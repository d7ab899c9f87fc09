"""Face embedding: the Embedder interface, the models it runs (ModelInfo) and the ONNX, dlib and torch embedders."""
