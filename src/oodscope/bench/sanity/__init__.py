"""Sanity experiments: the stress grid of outlier sources and the digits demo."""
