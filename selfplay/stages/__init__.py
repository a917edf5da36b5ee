"""The stages of an iteration: one module per family (sampling, judging, selecting, training, evaluating, pushing) and the table that orders them."""
