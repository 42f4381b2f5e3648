"""The Answer Model room: difference-aware Siamese members, pretext pretraining, ensembles and the ladder.

- `model/`: timm backbones and their offline weights, the network and heads, a member's settings
  (`member_config`), checkpoints, inputs, the cache of frozen view descriptors;
- `train/`: the training loop, pretext pretraining, synthetic pairs, the splits, the head and
  feature members, the frozen probe, the aspect heads;
- `experiments/`: the ensemble, a run on disk, notebook 02's ladders, notebook 04's calibration, statistics
  and explanations, the walkthrough of one pair;
- `answer_settings`: notebooks 02 and 04's settings.
"""
