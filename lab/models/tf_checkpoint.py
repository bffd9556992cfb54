"""Reading a TensorFlow (V2-format) checkpoint with NumPy alone — no TensorFlow.

A checkpoint ``<prefix>.index`` + ``<prefix>.data-00000-of-00001`` is a TensorBundle: the index is
an SSTable (the LevelDB table format: data blocks of prefix-compressed keys, an index block, a
48-byte footer ending in the magic number ``0xdb4775248b80fb57``) mapping each variable name to a
``BundleEntryProto`` (dtype, shape, shard, offset, size); the data file holds the raw
little-endian tensor bytes at those offsets. This reads both (uncompressed blocks, one shard,
unpartitioned variables — what ``tf.compat.v1.train.Saver`` writes for a small model) and checks
each tensor's byte count against its dtype and shape.

Used to take the weights of the ``musicnn`` package (Pons & Serra 2019), which ships TensorFlow 1
checkpoints inside its wheel, into PyTorch once, without making TensorFlow a dependency.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from lab.core.errors import LabError

MAGIC = 0xDB4775248B80FB57
# tensorflow/core/framework/types.proto -> numpy
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64, 10: np.bool_,
          19: np.float16}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, object]]:
    """Protobuf wire format -> [(field number, wire type, value)] (varints as int, length-delimited as bytes)."""
    out, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            v, pos = _varint(buf, pos)
        elif wire == 1:
            v, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            v, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            v, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((field, wire, v))
    return out


def _block(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one SSTable block (its 5-byte trailer must say: not compressed)."""
    if data[offset + size] != 0:
        raise ValueError(f"block at {offset} is compressed (type {data[offset + size]}); only uncompressed tables are read")
    blk = data[offset : offset + size]
    n_restarts = struct.unpack_from("<I", blk, len(blk) - 4)[0]
    end = len(blk) - 4 - 4 * n_restarts
    pos, key, out = 0, b"", []
    while pos < end:
        shared, pos = _varint(blk, pos)
        unshared, pos = _varint(blk, pos)
        vlen, pos = _varint(blk, pos)
        key = key[:shared] + blk[pos : pos + unshared]
        pos += unshared
        out.append((key, blk[pos : pos + vlen]))
        pos += vlen
    return out


def _handle(buf: bytes, pos: int) -> tuple[int, int, int]:
    off, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return off, size, pos


def read_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every variable of the checkpoint at ``prefix`` (the path before ``.index``) as a NumPy array."""
    prefix = str(prefix)
    index, data_path = Path(prefix + ".index"), Path(prefix + ".data-00000-of-00001")
    if not index.is_file() or not data_path.is_file():
        raise LabError(f"no TensorFlow checkpoint at {prefix} (looked for {index.name} and {data_path.name})")
    try:
        raw = index.read_bytes()
        if len(raw) < 48 or struct.unpack_from("<Q", raw, len(raw) - 8)[0] != MAGIC:
            raise ValueError("not an SSTable (bad magic number)")
        _, _, pos = _handle(raw, len(raw) - 48)  # the metaindex block: unused
        idx_off, idx_size, _ = _handle(raw, pos)
        entries = []
        for _, handle in _block(raw, idx_off, idx_size):
            off, size, _ = _handle(handle, 0)
            entries += _block(raw, off, size)
        data = data_path.read_bytes()
        out: dict[str, np.ndarray] = {}
        for key, value in entries:
            if key == b"":  # the BundleHeaderProto
                continue
            f = {num: v for num, _, v in _fields(value)}
            dtype = DTYPES.get(int(f.get(1, 0)))
            if dtype is None:
                raise ValueError(f"variable {key.decode()} has unsupported dtype enum {f.get(1)}")
            if int(f.get(3, 0)) != 0:
                raise ValueError(f"variable {key.decode()} lives in shard {f.get(3)}; only one-shard checkpoints are read")
            shape = [int(dict((n, v) for n, _, v in _fields(dim)).get(1, 0)) for n, _, dim in _fields(f.get(2, b"")) if n == 2]
            offset, size = int(f.get(4, 0)), int(f.get(5, 0))
            arr = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"), count=int(np.prod(shape, dtype=np.int64)), offset=offset)
            if arr.nbytes != size:
                raise ValueError(f"variable {key.decode()}: {size} bytes for shape {shape} of {np.dtype(dtype).name}")
            out[key.decode()] = arr.reshape(shape).copy()
    except (ValueError, IndexError, struct.error) as err:
        raise LabError(f"TensorFlow checkpoint {prefix} cannot be read ({err})") from None
    return out
