"""Foundations every other room uses: errors, paths, atomic storage, the rationale ontology."""
