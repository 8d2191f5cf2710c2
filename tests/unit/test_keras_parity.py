"""Parity with the real thing: the lesson's model built in Keras 3 (torch backend), same weights,
same probabilities on real MNIST images."""

import os

os.environ["KERAS_BACKEND"] = "torch"  # must precede the first keras import

import keras
import numpy as np
import torch

from cnnlab.models.keras_cnn import KerasCNN
from tests.helpers import mnist_data


def seed_keras_model() -> keras.Model:
    """The lesson's code, layer for layer (with an explicit Input instead of input_shape)."""
    from keras.layers import Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D

    return keras.Sequential(
        [
            Input((28, 28, 1)),
            Conv2D(32, kernel_size=(3, 3), activation="relu"),
            Conv2D(64, (3, 3), activation="relu"),
            MaxPooling2D(pool_size=(2, 2)),
            Dropout(0.25),
            Flatten(),
            Dense(128, activation="relu"),
            Dropout(0.5),
            Dense(10, activation="softmax"),
        ]
    )


def copy_keras_weights(source: keras.Model, net: KerasCNN) -> None:
    """Keras kernels are (kh, kw, in, out) and flatten NHWC; PyTorch: (out, in, kh, kw), NCHW."""
    conv1, conv2, dense1, output = (layer.get_weights() for layer in source.layers if layer.weights)
    channels, height, width = net.feature_shape
    pairs = [
        (net.features.conv1, conv1[0].transpose(3, 2, 0, 1), conv1[1]),
        (net.features.conv2, conv2[0].transpose(3, 2, 0, 1), conv2[1]),
        (
            net.classifier.dense1,  # rows in Keras' (h, w, c) flatten order -> PyTorch's (c, h, w)
            dense1[0].reshape(height, width, channels, -1).transpose(3, 2, 0, 1).reshape(128, -1),
            dense1[1],
        ),
        (net.classifier.output, output[0].T, output[1]),
    ]
    with torch.no_grad():
        for layer, weight, bias in pairs:
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            layer.bias.copy_(torch.from_numpy(bias))


def test_same_weights_give_the_same_probabilities_as_keras(mnist_dir):
    keras.utils.set_random_seed(0)
    source = seed_keras_model()
    net = KerasCNN().eval()
    assert source.count_params() == sum(p.numel() for p in net.parameters()) == 1_199_882
    # A few real training steps, as the lesson's fit does, so the outputs are confident.
    train_images, train_labels = mnist_data(mnist_dir).load_split(train=True)
    source.compile(loss="categorical_crossentropy", optimizer="adam")
    one_hot = keras.utils.to_categorical(train_labels[:3072].numpy(), 10)
    source.fit(train_images[:3072].permute(0, 2, 3, 1).numpy(), one_hot, batch_size=128, verbose=0)
    copy_keras_weights(source, net)

    images, _ = mnist_data(mnist_dir).load_split(train=False)
    images = images[:256]
    expected = source.predict(images.permute(0, 2, 3, 1).numpy(), verbose=0)
    expected = np.asarray(keras.ops.convert_to_numpy(expected))
    with torch.no_grad():
        probabilities = net(images).softmax(dim=-1).numpy()

    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert (probabilities.argmax(1) == expected.argmax(1)).all()
    assert probabilities.max(1).mean() > 0.7  # a real comparison, not two near-uniform outputs
