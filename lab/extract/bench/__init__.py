"""Extraction speed benchmark: ``python -m lab.bench [--models fcn,se] [--clips 8] [--out DIR]``.

For each tagger (random weights: speed does not depend on the values) it measures, on the same
decoded clips and in one fresh subprocess per model (so peak memory does not mix):

* decode time per clip (synthetic generation, or ``librosa`` decoding + resampling with
  ``--audio-dir``), reported apart from model time;
* BASELINE, the original way of working: clip after clip, all windows of one clip in one batch,
  float32 eager under ``torch.no_grad``, torch's default threads;
* OURS, the default path of :func:`lab.extract.embed.extract` (:class:`lab.extract.inference.InferenceEngine` with the
  model's ``DEFAULT_KNOBS``) over the same windows, and the speedup; both are the best of
  ``--repeats`` passes run alternately, so load from other processes hits both alike;
* the end-to-end rate of ``extract`` itself (decoding in its background thread, no cache);
* model FLOPs per window (``torch.utils.flop_counter``), the achieved FLOP/s, and their share of two
  ceilings measured in the same run: a large fp32 matmul and one large 3x3 convolution;
* peak resident memory (VmHWM, reset per phase) of the baseline, ours and end-to-end phases, and
  (``--check-memory``, on by default) the peak of embedding N, 4N and 16N songs with ``extract``
  in fresh processes, which must be flat (streaming);
* that OURS agrees with BASELINE within the golden tolerance (rtol = atol = 1e-4).

``--sweep`` additionally times a grid of knobs (batch size x workers x channels_last) per model:
the measurements behind ``lab.extract.inference.DEFAULT_KNOBS``.

Writes ``bench.csv`` and ``bench.md`` (plus ``memory.csv``, ``sweep.csv``) to ``--out``
(default ``bench_results/``, git-ignored) and prints the table with the machine in the header.
"""

from lab.extract.bench.cli import main, parse_args

__all__ = ["main", "parse_args"]
