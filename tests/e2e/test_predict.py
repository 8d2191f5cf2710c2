"""``cnnlab.predict`` on real MNIST test digits saved as image files, and on files it can't use."""

import json
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.digits import ImageFileError, load_digit, to_mnist
from cnnlab.runs.checkpoints import load_model
from tests.helpers import MNIST_NAMES, cli, mnist_data, train_run

TRAIN = ["trainer.max_epochs=1", "trainer.limit_train_batches=100", "trainer.limit_val_batches=2",
         "test=false", "callbacks.figures=null", "print_config=false"]  # fmt: skip


@pytest.fixture(scope="module")
def test_digits(mnist_dir):
    images, labels = mnist_data(mnist_dir).load_split(train=False)
    return images[:300], labels[:300]


@pytest.fixture(scope="module")
def trained_run(mnist_dir, tmp_path_factory):
    """A briefly trained model (100 batches: ~95% accurate) through the real training CLI."""
    return train_run(tmp_path_factory.mktemp("outputs"), *TRAIN)[0]


def as_uint8(image: torch.Tensor) -> np.ndarray:
    return (image[0].numpy() * 255).round().astype(np.uint8)


def save_variants(images, labels, folder) -> dict[str, int]:
    """Each digit saved three ways: MNIST as is, dark on white paper at 100x100 RGB, and a
    larger non-square JPEG. Returns file name -> true label."""
    truth = {}
    for n, (image, label) in enumerate(zip(images, labels.tolist(), strict=True)):
        pixels = as_uint8(image)
        variants = {
            f"{n}_plain.png": Image.fromarray(pixels),
            f"{n}_paper.png": Image.fromarray(255 - pixels).resize((100, 100)).convert("RGB"),
            f"{n}_wide.jpg": Image.fromarray(np.pad(pixels, ((10, 10), (30, 30)))).resize(
                (176, 96)
            ),
        }
        for name, variant in variants.items():
            variant.convert("RGB" if name.endswith("jpg") else variant.mode).save(folder / name)
            truth[name] = label
    return truth


def confidently_right(run_dir, images, labels, per_class: int = 1):
    """Test digits the trained model gets right with >= 0.95 confidence, one per class."""
    with torch.no_grad():
        probs = load_model(run_dir)[0](images).softmax(dim=1)
    confidence, preds = probs.max(dim=1)
    good = ((preds == labels) & (confidence >= 0.95)).nonzero().squeeze(1).tolist()
    chosen = {}
    for i in good:
        chosen.setdefault(int(labels[i]), i)
    assert len(chosen) >= 8, "the trained model should be confident on most classes"
    index = torch.tensor(sorted(chosen.values()))
    return images[index], labels[index]


def test_predict_returns_the_true_labels_of_saved_digits(trained_run, test_digits, tmp_path):
    images, labels = confidently_right(trained_run, *test_digits)
    folder = tmp_path / "digits"
    folder.mkdir()
    truth = save_variants(images, labels, folder)
    (folder / "notes.txt").write_text("not an image, and not an image suffix: skipped")
    out = tmp_path / "predictions.json"
    done = cli("cnnlab.predict", f"ckpt_path={trained_run}", f"images={folder}", f"json={out}",
               output_dir=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["errors"] == [] and len(result["predictions"]) == len(truth)
    for item in result["predictions"]:
        name = item["image"].rsplit("/", 1)[-1]
        top = item["top"]
        assert top[0]["class"] == MNIST_NAMES[truth[name]], name
        assert len(top) == 3 and top[0]["prob"] >= top[1]["prob"] >= top[2]["prob"]
        assert f"{name}: {top[0]['class']} {top[0]['prob']:.3f}" in done.stdout


def test_bad_files_get_one_line_each_and_the_rest_are_predicted(trained_run, test_digits, tmp_path):
    images, labels = test_digits
    good = tmp_path / "seven.png"
    Image.fromarray(as_uint8(images[0])).save(good)
    missing, text, truncated = tmp_path / "missing.png", tmp_path / "text.png", tmp_path / "cut.png"
    text.write_text("hello, not a PNG")
    truncated.write_bytes(good.read_bytes()[:80])
    empty, huge, bomb = tmp_path / "empty", tmp_path / "huge.png", tmp_path / "bomb.png"
    empty.mkdir()
    zero_png(huge, 12_000)  # 144 megapixels: a few hundred KB on disk, 576 MB as float32 gray
    zero_png(bomb, 20_000)  # over PIL's own decompression-bomb limit
    out = tmp_path / "out.json"
    listed = ",".join(str(p) for p in (missing, good, text, truncated, empty, huge, bomb))
    done = cli("cnnlab.predict", f"ckpt_path={trained_run}", f"images=[{listed}]", f"json={out}",
               output_dir=tmp_path)  # fmt: skip
    assert done.returncode == 2
    errors = done.stderr.strip().splitlines()
    assert errors == [
        f"cnnlab: error: {missing}: no such file",
        f"cnnlab: error: {text}: not an image (unrecognised format)",
        f"cnnlab: error: {truncated}: unreadable image (image file is truncated)",
        f"cnnlab: error: {empty}: folder holds no .png/.jpg/.jpeg/.bmp/.gif/.tif/.tiff/.webp files",
        f"cnnlab: error: {huge}: 12000x12000 pixels is too large to read (at most 50,000,000 "
        "pixels); scale it down first",
        errors[-1],
    ]
    assert errors[-1].startswith(f"cnnlab: error: {bomb}: too large to read (Image size")
    result = json.loads(out.read_text())
    assert [p["image"] for p in result["predictions"]] == [str(good)]
    assert result["predictions"][0]["top"][0]["class"] == MNIST_NAMES[int(labels[0])]
    named = (missing, text, truncated, empty, huge, bomb)
    assert [e["image"] for e in result["errors"]] == [str(p) for p in named]


def zero_png(path, side: int) -> None:
    """A real side x side black grayscale PNG, compressed row by row (never held decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    packer, row = zlib.compressobj(9), bytes(side + 1)  # filter byte 0, then the pixels
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))  # fmt: skip


def test_bad_checkpoint_folder_or_setting_is_one_line(test_digits, tmp_path):
    digit = tmp_path / "digit.png"
    Image.fromarray(as_uint8(test_digits[0][0])).save(digit)
    (tmp_path / "empty").mkdir()
    for overrides, message in (
        ([f"ckpt_path={tmp_path / 'none.ckpt'}"], "none.ckpt: no such file or run directory"),
        ([f"ckpt_path={tmp_path}"], "run directory holds no checkpoints/*.ckpt"),
        ([f"ckpt_path={digit}", "invert=maybe"], "invert='maybe': must be one of auto, true"),
        ([f"ckpt_path={digit}", "top_k=0"], "top_k=0: must be >= 1"),
        ([f"ckpt_path={digit}", "images=[]"], "images=[]: no images given"),
    ):
        done = cli("cnnlab.predict", f"images={digit}", *overrides, output_dir=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("cnnlab: error: ") and message in line, line


def test_an_mnist_digit_comes_back_as_itself(test_digits):
    images, _ = test_digits
    for image in images[:50]:
        converted = to_mnist(as_uint8(image).astype(np.float32))
        assert converted.shape == (1, 28, 28)
        assert (converted - image).abs().mean() < 0.01  # only the faintest edge pixels differ


def test_dark_ink_on_white_or_transparent_paper_is_inverted(test_digits, tmp_path):
    image = test_digits[0][0]
    plain = to_mnist(as_uint8(image).astype(np.float32))
    ink = as_uint8(image)
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., 3] = ink  # black ink whose opacity is the MNIST stroke, on a transparent sheet
    Image.fromarray(rgba).save(tmp_path / "transparent.png")
    rgba[..., :3] = 255  # the same stroke in white ink, on the same transparent sheet
    Image.fromarray(rgba).save(tmp_path / "white_on_transparent.png")
    Image.fromarray(255 - ink).save(tmp_path / "paper.png")
    for name in ("transparent.png", "white_on_transparent.png", "paper.png"):
        assert (load_digit(tmp_path / name) - plain).abs().max() < 0.02, name
    with pytest.raises(ImageFileError, match="no digit found"):  # not inverted: no light ink
        load_digit(tmp_path / "paper.png", invert="false")


def test_blank_image_is_an_error_naming_the_file(tmp_path):
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    with pytest.raises(ImageFileError, match=r"blank\.png: blank image: no digit found"):
        load_digit(tmp_path / "blank.png")


def test_a_file_name_hydra_cannot_read_unquoted_gets_the_quoting(tmp_path):
    done = cli("cnnlab.predict", "ckpt_path=x", "images=[ziffer ä.png,b.png]", output_dir=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("cnnlab: error: LexerNoViableAltException: images=[ziffer ä.png,b.png]")
    assert line.endswith(
        "and the whole override for the shell: \"images=['ziffer ä.png','b.png']\""
    )
