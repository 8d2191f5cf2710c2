"""Data: the general LightningDataModule, the datasets' files (MNIST, Fashion-MNIST: fetched,
verified), batch augmentation, and your own images converted to look like MNIST."""
