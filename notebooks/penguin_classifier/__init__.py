"""Penguin species classifier: the Databricks deep learning lab as a library."""
