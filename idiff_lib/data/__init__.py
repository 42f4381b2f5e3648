"""Pairs, their merged images and four views, content detection and data-set loading."""
