"""Lightning callbacks a training run needs to be correct: the best epoch's metrics, TensorBoard
events on disk, the RNG state in checkpoints, a clean stop on a signal, a stop on divergence.
Optional ones that only show things (the figures) live in ``cnnlab.insight``."""
