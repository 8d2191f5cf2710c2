"""Sweeps: the leaderboard, resuming a sweep, DDP inside a sweep trial, the Hydra callback that
ends every sweep with its leaderboard."""
