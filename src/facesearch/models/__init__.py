"""The model layer: detection, landmarks, alignment and embedding.

Each model is known by its task (detector, landmarker, embedder); the pipeline in
:mod:`facesearch.models.pipeline` composes them and produces one :class:`Face` record per face.
"""
