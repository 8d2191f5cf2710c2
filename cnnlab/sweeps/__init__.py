"""Sweeps: the leaderboard, the Hydra callback that starts every sweep in a directory of its own
and ends it with its leaderboard, a signal's stop of a whole sweep, DDP inside a sweep trial,
SLURM's jobs."""
