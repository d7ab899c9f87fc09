"""Speed: ingest against dlib, the embedder and detectors alone, the GPU path, the catalog writer, HTTP load."""
