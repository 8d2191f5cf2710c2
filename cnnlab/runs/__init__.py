"""A run's lifecycle: config checks, the train/test/record sequence, results, checkpoints, resume,
and the command-line plumbing that turns problems into one ``cnnlab: error:`` line."""
