"""Audio to embeddings: windowing, the embedding cache, inference engines and backends, sharding, the steps every study shares, the speed benchmark."""
