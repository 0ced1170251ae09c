"""Ordered codes: the prefixes of a code, as PCA's components."""
