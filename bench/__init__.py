"""facesearch's benchmarks, run as modules from the repository root: ``python -m bench.speed.ingest``.

- ``bench.speed``: how fast the pipeline runs (ingest, embedder, detector, GPU, writer, HTTP load);
- ``bench.accuracy``: how well it verifies and identifies (thresholds, embedding recipes);
- ``bench.scale``: how search behaves as the gallery grows (FAISS and Milvus, up to 10M faces);
- ``bench.datasets``: where the data is (``$FACESEARCH_DATA``, else ``../shared/data``) and its loaders.

Results go to ``bench/out/`` (ignored by git). Scripts that write files the package ships live in
``scripts/`` instead.
"""
