"""Vector stores: the VectorStore protocol, its engines (FAISS, Milvus), the factory that opens one."""
