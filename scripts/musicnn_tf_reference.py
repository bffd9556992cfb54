"""Write tests/data/musicnn_tf_reference.npz: the musicnn package's own TensorFlow outputs on one clip.

The reference that ``tests/test_musicnn_tf.py`` holds the PyTorch port (lab/models/musicnn_tf.py) to.
Run it ONCE in a throwaway environment that has TensorFlow — never in the lab's (TensorFlow is not a
dependency of the lab); the lab reads the package's checkpoints with NumPy::

    python3.11 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install "tensorflow-cpu==2.15.1" "numpy<2" librosa==0.10.2
    /tmp/tfvenv/bin/pip install --no-deps musicnn==0.1.0
    /tmp/tfvenv/bin/python scripts/musicnn_tf_reference.py ../shared/music/gtzan_mini/genres/blues/blues.00000.wav

librosa 0.10 pads frames with zeros (``pad_mode="constant"``): the test computes its input the same way.
The package's extractor returns the *first* patch's penultimate layer for every patch (it
concatenates ``penultimate_`` where it means ``backend_``), so only row 0 of it is kept.
"""

import sys
from pathlib import Path

import numpy as np
from musicnn.extractor import extractor

path = sys.argv[1]
out = Path(__file__).resolve().parents[1] / "tests" / "data" / "musicnn_tf_reference.npz"
for model in ("MTT_musicnn",):
    taggram, tags, features = extractor(path, model=model, input_length=3, extract_features=True)
    np.savez(out, clip=Path(path).name, model=model, taggram=taggram.astype(np.float32),
             penultimate0=features["penultimate"][0].astype(np.float32), tags=np.array(tags))
    print(f"{out}: {model} taggram {taggram.shape}, penultimate row 0")
