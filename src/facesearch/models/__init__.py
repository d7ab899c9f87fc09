"""The model layer: detection, landmarks, alignment and embedding.

Each model is known by its task: :mod:`~facesearch.models.detect` (detectors and landmarks),
:mod:`~facesearch.models.embed` (embedders and the models they run), :mod:`~facesearch.models.convert`
(dlib's weights turned into ONNX). :mod:`facesearch.models.runtime` decides where they run and makes
their sessions; the pipeline in :mod:`facesearch.models.pipeline` composes them and produces one
:class:`~facesearch.models.pipeline.Face` record per face.
"""
