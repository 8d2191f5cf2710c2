"""cnnlab: the Keras MNIST convnet lesson as a Lightning + Hydra experiment framework."""

CLASS_NAMES = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")
