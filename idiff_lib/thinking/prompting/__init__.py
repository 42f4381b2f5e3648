"""What the Thinking Model reads: the prompt stages S0-S4, the aspect evidence block, the cue texts and S4 verdicts, and the template writer filled from them."""
