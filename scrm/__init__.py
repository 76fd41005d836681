"""Composition root of the WeCom retail SCRM service."""
