"""Lightning callbacks a training run needs to be correct: the best epoch's metrics, TensorBoard
events on disk, the RNG state and the run's config in checkpoints, a clean stop on a signal (or
when its sweep stops), a stop on divergence, a validated stop at ``max_steps``. Optional ones
that only show things (the figures) live in ``cnnlab.insight``."""
