"""Figures and tables: one figure style, each notebook's plots, the HTML report."""
