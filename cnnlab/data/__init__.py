"""Data: MNIST's files (fetched, verified), the LightningDataModule, and your own images
converted to look like MNIST."""
