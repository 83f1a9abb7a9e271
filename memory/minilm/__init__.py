"""Tokenizer of the packaged all-MiniLM-L6-v2 model (data only; see SOURCE.md)."""
