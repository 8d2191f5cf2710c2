"""Models: the architecture (``Arch``), the lesson's network (``KerasCNN``) and its layers, and the
LightningModule that trains it (``MNISTClassifier``)."""
