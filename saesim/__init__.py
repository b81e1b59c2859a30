"""saesim: compare SAE feature spaces across language models."""
