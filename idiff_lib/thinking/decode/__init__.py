"""Writing rationales: greedy decoding (free and structure-constrained), resumable output files, and scoring them."""
