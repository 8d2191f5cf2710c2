"""Models: the networks (the lesson's ``KerasCNN``, PyTorch's example ``TorchMNIST``, an ``MLP``,
or any ``nn.Module`` through config) and the LightningModule that trains any of them
(``Classifier``)."""
