"""Embedding a dataset into the cache only (experiment=extract), e.g. one shard of a large corpus."""
