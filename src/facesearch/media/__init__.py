"""Photos as bytes and pixels: reading files, fetching URLs safely, decoding to upright RGB.

Shared by ingest (every engine) and search (probes), below both: it knows nothing of libraries.
"""
