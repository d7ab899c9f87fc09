"""Scale: vector search latency, recall and memory from 10k to 10M faces (FAISS engines and Milvus Lite)."""
