"""cnnlab: the Keras MNIST convnet lesson as a Lightning + Hydra experiment framework."""
