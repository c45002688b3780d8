"""Annotations to GOT's conversation records: the formats read (GOT JSON/JSONL, ms-swift and
LLaMA-Factory, Parquet and HF datasets, PAGE-XML/ALTO, line images, packed shards), their indexes,
and records written back out."""
