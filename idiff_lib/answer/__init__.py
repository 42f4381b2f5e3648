"""The Answer Model: difference-aware Siamese members, pretext pretraining, ensembles and the ladder."""
