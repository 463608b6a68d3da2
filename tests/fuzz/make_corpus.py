#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): small valid files and
edge cases, so each run starts from inputs that reach deep into its parser. Re-run after a format
change; crash inputs found later are committed next to these under their libFuzzer names."""
import gzip
import os
import struct
import zlib

here = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    folder = os.path.join(here, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, mtime=0)


# ---- IDX: header big-endian (0, 0, 0x08, rank, dims...), then unsigned bytes.
def idx(rank, dims, data):
    return struct.pack(">I", 0x800 | rank) + b"".join(struct.pack(">I", d) for d in dims) + data


images = idx(3, [2, 3, 2], bytes(range(12)))
labels = idx(1, [4], bytes([0, 1, 9, 255]))
put("idx", "images", images)
put("idx", "labels", labels)
put("idx", "images.gz", gz(images))
put("idx", "labels.gz", gz(labels))
put("idx", "empty_set.gz", gz(idx(3, [0, 28, 28], b"")))
put("idx", "two_members.gz", gz(images[:9]) + gz(images[9:]))
put("idx", "trailing_garbage.gz", gz(labels) + b"garbage")
put("idx", "wrapping_dims", idx(3, [1 << 20, 1 << 20, 1 << 24], b""))
put("idx", "huge_declared.gz", gz(idx(3, [1 << 20, 1 << 20, 1], bytes(4096))))
put("idx", "truncated", images[:-3])
put("idx", "not_idx.gz", gz(b"hello world"))

# ---- checkpoints (io/checkpoint.hpp, version 1, little-endian, CRC-32 of zlib).
def checkpoint(tensors, step=7):
    head = b"KILNCKPT" + struct.pack("<IIqI", 1, len(tensors), step, 0)
    out = head + struct.pack("<I", zlib.crc32(head))
    for name, code, dims, trainable, data in tensors:
        rec = struct.pack("<IBBBB", len(name), code, len(dims), 1 if trainable else 0, 0)
        rec += b"".join(struct.pack("<q", d) for d in dims) + struct.pack("<Q", len(data)) + name
        out += rec + struct.pack("<I", zlib.crc32(rec)) + data + struct.pack("<I", zlib.crc32(data))
    return out


# The store of fuzz_checkpoint.cpp: w f32 [2,2] trainable, m f64 [2], it i64 [], c i32 [1], b bool [1].
store = [
    (b"w", 1, [2, 2], True, struct.pack("<4f", 1.0, -0.0, float("inf"), 3.5)),
    (b"m", 2, [2], False, struct.pack("<2d", 1e308, float("nan"))),
    (b"it", 4, [], False, struct.pack("<q", -(1 << 62))),
    (b"c", 3, [1], False, struct.pack("<i", 7)),
    (b"b", 5, [1], False, b"\x01"),
]
put("checkpoint", "matching_store", checkpoint(store))
put("checkpoint", "extra_tensor", checkpoint(store + [(b"extra", 1, [1], True, bytes(4))]))
put("checkpoint", "trainable_flipped", checkpoint([(n, c, d, not t, x) for n, c, d, t, x in store]))
put("checkpoint", "other_shape", checkpoint([(b"w", 1, [4], True, bytes(16))] + store[1:]))
put("checkpoint", "empty", checkpoint([]))
put("checkpoint", "overflowing_dims", checkpoint([(b"w", 1, [1 << 62, 4], True, b"")]))
put("checkpoint", "header_only", checkpoint(store)[:32])

# ---- TensorBoard writer inputs: i64 step, op byte (0 scalar, 1 histogram f64, 2 image, 3 text,
# 4 histogram f32), then length-prefixed tag and the op's values (see fuzz_tensorboard.cpp).
def tag(t):
    return bytes([len(t)]) + t


step = struct.pack("<q", 42)
put("tensorboard", "scalar", step + b"\x00" + tag(b"loss") + struct.pack("<d", 0.25))
put("tensorboard", "histogram", step + b"\x01" + tag(b"w") + b"\x04" + struct.pack("<4d", 1.0, -2.0, float("nan"), float("inf")))
put("tensorboard", "image", step + b"\x02" + tag(b"img") + bytes([2, 3, 3]) + bytes(range(18)))
put("tensorboard", "image_bad_sizes", step + b"\x02" + tag(b"img") + bytes([0xFF, 3, 9]))
put("tensorboard", "text", step + b"\x03" + tag(b"config") + tag("batch 64, λ 1e-3 \x00 end".encode()))
put("tensorboard", "histogram_f32", step + b"\x04" + b"\x02" + struct.pack("<2f", 1e-45, -3.0) + tag(b"h"))
put("tensorboard", "empty_tag", step + b"\x00" + tag(b"") + struct.pack("<d", 1e308))

# ---- TFRecord / CRC-32C: any bytes.
put("tfrecord", "empty", b"")
put("tfrecord", "digits", b"123456789")
put("tfrecord", "unaligned_long", bytes(range(256)) * 3)
