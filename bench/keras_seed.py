"""Run the lesson's original Keras MNIST convnet on TensorFlow CPU and measure it.

This is the reference side of `make bench`: the seed code, unchanged in model, compile and
fit arguments, wrapped in just enough instrumentation to compare cnnlab against it.
It must run in its own virtualenv (.venv-tf): importing tensorflow and torch in one
process crashes, so this script never imports anything from cnnlab.

MNIST is read from the torchvision raw IDX layout that cnnlab prepares, because
`keras.datasets.mnist.load_data()` needs the internet.
"""

# ruff: noqa: E402, RUF100 - imports follow T_START on purpose
import time

# Taken before any other import so end_to_end_s includes importing TensorFlow.
T_START = time.perf_counter()

import argparse
import json
import os
import platform
import resource
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # hide TF's INFO chatter, keep warnings

import keras
import numpy as np
import tensorflow as tf
from keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from keras.models import Sequential

BATCH_SIZE = 128  # the seed's fit(batch_size=128)
WARMUP_BATCHES = 20  # first batches of epoch 1 include tracing / graph building

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Parse one uncompressed IDX file with numpy only (no torchvision in this venv).

    Header: two zero bytes, a dtype code, the number of dims, then each dim as a
    big-endian uint32; the data follows, big-endian.
    """
    raw = path.read_bytes()
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=IDX_DTYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims}, found {data.size} values")
    return data.reshape(dims)


def load_mnist(data_dir: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]:
    """Same return shape as keras.datasets.mnist.load_data(), read from <data_dir>/MNIST/raw."""
    raw_dir = data_dir / "MNIST" / "raw"
    arrays = {key: read_idx(raw_dir / name) for key, name in IDX_FILES.items()}
    return (
        (arrays["train_images"], arrays["train_labels"]),
        (arrays["test_images"], arrays["test_labels"]),
    )


class BatchTimer(keras.callbacks.Callback):
    """Record the wall time of every training batch and epoch (perf_counter).

    Overriding on_train_batch_end makes Keras dispatch batch-end callbacks synchronously,
    so the end stamp really follows the step (the seed alone would run its progress bar
    asynchronously; on CPU the difference is negligible).
    """

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.steps: list[tuple[int, int, float]] = []  # (epoch, batch, seconds)
        self.epoch_s: list[float] = []
        self._t_batch = 0.0
        self._t_epoch = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        self._t_epoch = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_s.append(time.perf_counter() - self._t_epoch)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._t_batch = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps.append((self.epoch, batch, time.perf_counter() - self._t_batch))


def steady_step_times(steps: list[tuple[int, int, float]], n_train: int) -> list[float]:
    """Step times without warm-up and without the short last batch of each epoch.

    Warm-up (first WARMUP_BATCHES of epoch 1) holds tf.function tracing; a partial final
    batch (60000 % 128 = 96 images) would skew images/s = BATCH_SIZE / step.
    """
    last_partial = n_train // BATCH_SIZE if n_train % BATCH_SIZE else None
    return [
        dt
        for epoch, batch, dt in steps
        if not (epoch == 0 and batch < WARMUP_BATCHES) and batch != last_partial
    ]


def build_seed_model() -> Sequential:
    """The lesson's model and compile call, verbatim (Keras 3 warns about input_shape)."""
    model = Sequential()
    model.add(Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(128, activation="relu"))
    model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))
    model.compile(
        loss=keras.losses.categorical_crossentropy,
        optimizer="adam",
        metrics=["accuracy"],
    )
    return model


def thread_info() -> dict:
    """What TF was allowed to use: 0 means 'TF default' (all visible cores)."""
    return {
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "<unset: on for x86>"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line; defaults reproduce the seed (5 epochs, full data, progress bar)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True, help="dir holding MNIST/raw/*-ubyte")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument(
        "--max-steps-per-epoch",
        type=int,
        default=None,
        help="train on only the first N*128 images (quick throughput check)",
    )
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="fit() verbosity")
    p.add_argument("--intra-threads", type=int, default=0, help="0 = TensorFlow default")
    p.add_argument("--inter-threads", type=int, default=0, help="0 = TensorFlow default")
    p.add_argument("--seed", type=int, default=None, help="keras.utils.set_random_seed")
    p.add_argument("--json", type=Path, default=None, help="write results here as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Load data, run the seed, time it, return (and optionally write) the results."""
    args = parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_threads)
    if args.seed is not None:
        keras.utils.set_random_seed(args.seed)

    # --- the seed's data preparation ---
    (X_train, y_train), (X_test, y_test) = load_mnist(args.data_dir)
    X_train = X_train / 255.0
    X_test = X_test / 255.0
    X_train = X_train.reshape(X_train.shape[0], 28, 28, 1)
    X_test = X_test.reshape(X_test.shape[0], 28, 28, 1)
    y_train = keras.utils.to_categorical(y_train, 10)
    y_test = keras.utils.to_categorical(y_test, 10)
    if args.max_steps_per_epoch:
        n = args.max_steps_per_epoch * BATCH_SIZE
        X_train, y_train = X_train[:n], y_train[:n]

    model = build_seed_model()
    timer = BatchTimer()

    t_fit = time.perf_counter()
    history = model.fit(
        X_train,
        y_train,
        batch_size=BATCH_SIZE,
        epochs=args.epochs,
        verbose=args.verbose,
        validation_data=(X_test, y_test),
        callbacks=[timer],
    )
    fit_wall_s = time.perf_counter() - t_fit

    score = model.evaluate(X_test, y_test, verbose=0)
    print("Test loss:", score[0])
    print("Test accuracy:", score[1])

    steady = steady_step_times(timer.steps, len(X_train))
    median_step = statistics.median(steady) if steady else float("nan")
    results = {
        "framework": "keras-tensorflow",
        "tf_version": tf.__version__,
        "keras_version": keras.__version__,
        "python_version": platform.python_version(),
        "params": model.count_params(),
        "images_per_s": BATCH_SIZE / median_step,
        "median_step_ms": median_step * 1000.0,
        "mean_images_per_s": BATCH_SIZE * len(steady) / sum(steady) if steady else None,
        "timed_steps": len(steady),
        "warmup_steps_dropped": WARMUP_BATCHES,
        "epoch_wall_s": timer.epoch_s,
        "fit_wall_s": fit_wall_s,
        "test_loss": float(score[0]),
        "test_acc": float(score[1]),
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "epochs": args.epochs,
        "batch_size": BATCH_SIZE,
        "train_images": len(X_train),
        "max_steps_per_epoch": args.max_steps_per_epoch,
        "threads": thread_info(),
        "end_to_end_s": time.perf_counter() - T_START,
    }
    print(
        f"[bench] {results['images_per_s']:.0f} img/s (median step "
        f"{results['median_step_ms']:.1f} ms), fit {fit_wall_s:.1f} s, "
        f"end-to-end {results['end_to_end_s']:.1f} s, peak RSS {results['peak_rss_mb']:.0f} MB"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
