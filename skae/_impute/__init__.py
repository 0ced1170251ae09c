"""The imputer's linear fill models: soft-impute and a multivariate normal."""
