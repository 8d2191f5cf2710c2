"""Classify images with a model that cnnlab exported, using onnxruntime, numpy and Pillow only:
python examples/serve_onnx.py outputs/runs/<run>/export/model.onnx digit.png [more.png ...]"""

import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
names, prep = json.loads(meta["class_names"]), json.loads(meta["preparation"])
for path in sys.argv[2:]:
    image = Image.open(path).convert("L" if prep["channels"] == 1 else "RGB")
    image = image.resize((prep["width"], prep["height"]), Image.Resampling.BILINEAR)
    x = np.asarray(image, np.float32).reshape(prep["height"], prep["width"], -1) * prep["scale"]
    if prep["recipe"] == "digit" and np.median(x[0]) > 0.5:  # dark ink on paper: MNIST's is light
        x = 1 - x
    (probs,) = session.run(["probabilities"], {"images": x.transpose(2, 0, 1)[None]})
    print(f"{path}: {names[probs[0].argmax()]} {probs[0].max():.3f}")
