"""Building an exported file from a trained network: traced once by ``torch.export``, then
written as ONNX (the dynamo exporter, from that same program) or as the program itself (pt2).

The graph takes what the network takes, (N, C, H, W) float32 in [0, 1] with N dynamic, and
returns probabilities (softmax), as Keras' ``model.predict`` does; weights are fp32.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from cnnlab.errors import CnnlabError, one_line
from cnnlab.serving.onnx_model import INPUT, OUTPUT, session

FORMATS = ("onnx", "pt2")  # each also the file's suffix
METADATA_FILE = "metadata.json"  # where a pt2 file keeps the metadata (torch.export extra_files)
Runner = Callable[[np.ndarray], np.ndarray]  # images -> probabilities


class Probabilities(nn.Module):
    """The network followed by a softmax: the exported graph's output is what a server wants."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images).softmax(dim=-1)


class ExportError(CnnlabError):
    """A network that ``torch.export`` (or the ONNX exporter) cannot take: names the reason."""


@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """torch.export and the ONNX exporter log warnings while they work, and a failed trace
    prints its partial graph to stderr (pages); the command's one line says what matters."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def trace(net: nn.Module, shape: tuple[int, int, int]) -> torch.export.ExportedProgram:
    """``net`` (in fp32, eval mode) with its softmax, traced for any batch of ``shape`` images."""
    model = Probabilities(net.float().eval())
    example = torch.rand(2, *shape)  # a batch of 2: a batch of 1 would be specialised to 1
    try:
        with quiet_exporters():
            return torch.export.export(
                model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
            )
    except Exception as e:  # torch.export raises many kinds (UserError, guard errors, ...)
        raise ExportError(
            f"torch.export cannot trace the network {type(net).__name__}: {one_line(e)}"
        ) from None


def onnx_bytes(program: torch.export.ExportedProgram, metadata: dict[str, str]) -> bytes:
    """The program as an ONNX model with ``metadata`` in its metadata_props."""
    try:
        with quiet_exporters():
            exported = torch.onnx.export(
                program, dynamo=True, verbose=False, input_names=[INPUT], output_names=[OUTPUT]
            )
    except Exception as e:  # an operator without an ONNX translation, say
        raise ExportError(f"the ONNX exporter cannot convert the network: {one_line(e)}") from None
    proto = exported.model_proto
    onnx.helper.set_model_props(proto, metadata)
    return proto.SerializeToString()


def pt2_bytes(program: torch.export.ExportedProgram, metadata: dict[str, str]) -> bytes:
    """The program as ``torch.export.save`` writes it, the metadata as one of its extra files."""
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={METADATA_FILE: json.dumps(metadata)})
    return buffer.getvalue()


def runner(form: str, data: bytes, threads: int) -> Runner:
    """The written file, loaded back as a server would load it, as images -> probabilities."""
    if form == "onnx":
        loaded = session(data, threads)
        return lambda images: loaded.run([OUTPUT], {INPUT: images})[0]
    return torch_runner(torch.export.load(io.BytesIO(data)).module())


def eager_runner(net: nn.Module) -> Runner:
    """The checkpoint's network in eager PyTorch, the reference the file is held against."""
    return torch_runner(Probabilities(net.float().eval()))


def torch_runner(module: nn.Module) -> Runner:
    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(images)).numpy()

    return run
