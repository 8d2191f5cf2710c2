"""A trained model outside the training stack: ``cnnlab.export`` builds the file
(``programs``), checks it against the checkpoint (``checks``), and ``onnx_model`` runs an
exported ONNX file through onnxruntime for ``cnnlab.predict``."""
