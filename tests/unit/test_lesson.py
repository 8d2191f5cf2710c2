"""The lesson's worked examples, computed with cnnlab's own layers, give the lesson's numbers."""

import subprocess
import sys

import torch

from cnnlab.insight.worked_examples import FILTER, IMAGE, convolve, max_pool
from tests.helpers import ROOT


def test_convolution_gives_the_lessons_feature_map():
    expected = torch.tensor([[4, 3, 4], [2, 4, 3], [2, 3, 4]], dtype=torch.float32)
    assert torch.equal(convolve(IMAGE, FILTER), expected)


def test_zero_padding_keeps_the_size_and_the_inner_values():
    padded = convolve(IMAGE, FILTER, padding="same")
    assert padded.shape == IMAGE.shape
    assert torch.equal(padded[1:-1, 1:-1], convolve(IMAGE, FILTER))
    assert padded[0].tolist() == [2, 2, 3, 1, 1]  # corners see the zeros: 1 (centre) + 1
    assert padded[4].tolist() == [0, 2, 2, 1, 1]


def test_max_pool_2x2_stride_2_keeps_the_largest_of_each_window():
    feature_map = torch.tensor([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
    pooled = max_pool(feature_map.float())
    assert pooled.tolist() == [[6, 8], [3, 4]]  # 16 features -> 4


def test_lesson_command_prints_the_worked_examples():
    done = subprocess.run(
        [sys.executable, "-m", "cnnlab.lesson"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "no padding (3x3):\n4\t3\t4\n2\t4\t3\n2\t3\t4\n" in done.stdout
    assert "stride 2 (2x2):\n6\t8\n3\t4\n" in done.stdout
    assert "keeps the size (5x5)" in done.stdout
