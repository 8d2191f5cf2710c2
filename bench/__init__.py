"""The benchmark harness (``make bench``): cnnlab against a plain PyTorch loop and the lesson's
Keras code on TensorFlow. Not part of the installed package; run from the checkout."""
