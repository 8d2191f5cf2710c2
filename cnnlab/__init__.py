"""cnnlab: the Keras MNIST convnet lesson as a Lightning + Hydra experiment framework."""

import os

CLASS_NAMES = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")

# Before torch loads OpenMP: idle CPU threads sleep instead of spinning, which on a busy or
# shared CPU (and in parallel sweep trials) is several times faster (docs/speed.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
