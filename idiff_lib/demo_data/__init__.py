"""The embedded benchmark: source photos, degradations, reference rationales, build and datasheet."""
