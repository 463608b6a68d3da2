#!/usr/bin/python3
"""Writes tests/data/vision_step_reference.bin: one SGD training step of three of the seeds' image
classifiers, computed by PyTorch in float64, for tests/test_vision_step_reference.cpp:
  mnist_cnn      models/mnist_cnn.hpp (valid 2x2 convs, max pools, batch norms, Flatten, Dense);
  conv_head_gap  models/conv_heads.hpp, conv_head<head::gap, false> ('same' 3x3 convs, batch
                 norm before ReLU, a batch norm without a pool after it, global average pooling);
  resnet1        models/resnet.hpp, resnet<1> (a 3x3 max pool, one identity residual block with
                 batch norms, global average pooling, Dense(256, relu), Dropout(0.5), Dense(10)).
                 The dropout mask of the first run is rebuilt here from kiln's counter-based hash
                 (runtime/random.hpp, nn/random.hpp, nn/dropout.hpp): the mask is the random draw,
                 not something the test checks, but the gradient through it is.

Each network is rebuilt here from its definition, with every parameter kept in kiln's layout so
that the gradients come out in it too:
  conv kernels [k, k, C, F] (Keras HWIO; torch wants [F, C, k, k]: permute(3, 2, 0, 1)),
  activations NHWC in kiln (NCHW here), Flatten over (h, w, c) row-major before the dense layer
  (so the NCHW activation is permuted to NHWC before flattening), dense kernel [in, units].
Batch norm (Keras): batch mean and biased variance over N, H, W, epsilon 1e-3; moving statistics
  moving -= (moving - batch) * (1 - 0.99), the moving variance taking the Bessel-corrected batch
  variance (n / (n - 1), n = N*H*W: Keras's fused 4-D kernel, as nn/normalization.hpp says).
Loss: mean sparse softmax cross-entropy. Update: plain SGD, w -= lr * grad, lr = LEARNING_RATE.

The initial weights, images and labels come from the same formula as the C++ test (the PCG-like
generator of tests/test_util.hpp's kt::rng, one seed per variable), so nothing but the result is
stored. Run with Debian's python3-torch: /usr/bin/python3 tools/make_vision_step_reference.py

File format (little-endian):
  line "kiln-vision-step-reference 2"
  one line "loss <network> <%.17g>" per network
  one line "<network>:<variable name> <element count>" per variable, in the order of the data below
  line "end"
  then, per variable in that order, its count float32 values: the value AFTER the step minus the
  value before it (the update; for trainable variables -lr * grad), in kiln's layout. float32
  keeps the file small; its rounding (6e-8 relative) is far below the test's tolerance.
"""
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

LEARNING_RATE = 0.1
BATCH = 4
LABELS = [3, 7, 0, 9]
IMAGE_SEED = 1000
MOMENTUM = 0.99
EPSILON = 1e-3

# name, shape (kiln layout), seed of its values. The C++ test uses the same tables.
MNIST_CNN_VARIABLES = [
    ("conv1/kernel", (2, 2, 1, 32), 1),
    ("conv1/bias", (32,), 2),
    ("bn1/gamma", (32,), 3),
    ("bn1/beta", (32,), 4),
    ("bn1/moving_mean", (32,), 5),
    ("bn1/moving_variance", (32,), 6),
    ("conv2/kernel", (2, 2, 32, 32), 7),
    ("conv2/bias", (32,), 8),
    ("bn2/gamma", (32,), 9),
    ("bn2/beta", (32,), 10),
    ("bn2/moving_mean", (32,), 11),
    ("bn2/moving_variance", (32,), 12),
    ("dense/kernel", (6 * 6 * 32, 10), 13),
    ("dense/bias", (10,), 14),
]


def trunk_variables():
    out, seed = [], 100
    for i, (c, f) in enumerate([(1, 32), (32, 32), (32, 64)], start=1):
        for name, shape in [("trunk%d/kernel" % i, (3, 3, c, f)), ("trunk%d/bias" % i, (f,)), ("trunk_bn%d/gamma" % i, (f,)),
                            ("trunk_bn%d/beta" % i, (f,)), ("trunk_bn%d/moving_mean" % i, (f,)), ("trunk_bn%d/moving_variance" % i, (f,))]:
            seed += 1
            out.append((name, shape, seed))
    return out + [("logits/kernel", (64, 10), 201), ("logits/bias", (10,), 202)]


CONV_HEAD_GAP_VARIABLES = trunk_variables()


def resnet1_variables():
    out, seed = [], 300
    def conv_bn(conv, c, f, bn=None):
        nonlocal seed
        names = [(conv + "/kernel", (3, 3, c, f)), (conv + "/bias", (f,))]
        if bn:
            names += [(bn + "/gamma", (f,)), (bn + "/beta", (f,)), (bn + "/moving_mean", (f,)), (bn + "/moving_variance", (f,))]
        for name, shape in names:
            seed += 1
            out.append((name, shape, seed))
    conv_bn("conv1", 1, 32)
    conv_bn("conv2", 32, 64)
    conv_bn("res1/conv_a", 64, 64, "res1/bn_a")
    conv_bn("res1/conv_b", 64, 64, "res1/bn_b")
    conv_bn("conv3", 64, 64)
    return out + [("dense/kernel", (64, 256), 401), ("dense/bias", (256,), 402), ("logits/kernel", (256, 10), 403), ("logits/bias", (10,), 404)]


RESNET1_VARIABLES = resnet1_variables()

MASK = (1 << 64) - 1


def mix64(x):
    """runtime/random.hpp's mix64 (splitmix64's finalizer)."""
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def hash_name(name):
    h = 1469598103934665603
    for c in name.encode():
        h = ((h ^ c) * 1099511628211) & MASK
    return h


def dropout_keep_mask(name, seed, rate, count, counter=0):
    """nn/dropout.hpp's mask for the run whose counter is `counter`: element i (row-major) is kept
    when u_i >= rate, u_i = ((mix64(mix64(key) ^ i) >> 41) + 0.5) / 2^23 (op uniform_hash) with
    key = counter + ((mix64(stream seed) >> 33) << 32) and stream seed mix64(seed) ^ hash(name)."""
    stream = mix64(seed) ^ hash_name(name)
    key = counter + ((mix64(stream) >> 33) << 32)
    hk = mix64(key)
    return [((mix64(hk ^ i) >> 41) + 0.5) / 8388608.0 >= rate for i in range(count)]


class Rng:
    """tests/test_util.hpp's kt::rng, bit for bit."""

    def __init__(self, seed):
        self.s = (seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & MASK

    def next(self):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) & MASK
        x = self.s
        x ^= x >> 33
        x = (x * 0xFF51AFD7ED558CCD) & MASK
        x ^= x >> 33
        return x

    def uniform(self, lo, hi):
        return lo + (hi - lo) * float(self.next() >> 11) * (1.0 / 9007199254740992.0)


def to_f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def initial_values(name, shape, seed):
    """Kernels of variance about 1/fan_in, gammas and variances in [0.5, 1.5], the rest near 0;
    each rounded to float32 as the C++ test stores it."""
    r = Rng(seed)
    count = math.prod(shape)
    fan_in = math.prod(shape[:-1]) if len(shape) > 1 else 1
    out = []
    for _ in range(count):
        if name.endswith("/kernel"):
            v = r.uniform(-1, 1) * math.sqrt(3.0 / fan_in)
        elif name.endswith("/gamma") or name.endswith("/moving_variance"):
            v = r.uniform(0.5, 1.5)
        else:
            v = r.uniform(-0.2, 0.2)
        out.append(to_f32(v))
    return out


def images_nhwc():
    r = Rng(IMAGE_SEED)
    return [to_f32(r.uniform(0, 1)) for _ in range(BATCH * 28 * 28)]


def batch_norm(x_nchw, p, name):
    """Training-mode Keras batch norm; returns y and the updated moving statistics."""
    mean = x_nchw.mean(dim=(0, 2, 3))
    centered = x_nchw - mean.view(1, -1, 1, 1)
    variance = (centered * centered).mean(dim=(0, 2, 3))
    y = centered / torch.sqrt(variance + EPSILON).view(1, -1, 1, 1) * p[name + "/gamma"].view(1, -1, 1, 1) + p[name + "/beta"].view(1, -1, 1, 1)
    n = x_nchw.shape[0] * x_nchw.shape[2] * x_nchw.shape[3]
    decay = 1 - MOMENTUM
    moving_mean = p[name + "/moving_mean"] - (p[name + "/moving_mean"] - mean.detach()) * decay
    moving_variance = p[name + "/moving_variance"] - (p[name + "/moving_variance"] - variance.detach() * n / (n - 1)) * decay
    return y, {name + "/moving_mean": moving_mean, name + "/moving_variance": moving_variance}


def conv(x_nchw, p, name, padding=0):
    return F.conv2d(x_nchw, p[name + "/kernel"].permute(3, 2, 0, 1), p[name + "/bias"], padding=padding)


def mnist_cnn(x, p):
    """Logits [n, 10] and the new moving statistics."""
    h, moving1 = batch_norm(F.max_pool2d(F.relu(conv(x, p, "conv1")), 2), p, "bn1")
    h, moving2 = batch_norm(F.max_pool2d(F.relu(conv(h, p, "conv2")), 2), p, "bn2")
    flat = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # kiln's Flatten of NHWC
    return flat @ p["dense/kernel"] + p["dense/bias"], {**moving1, **moving2}


def conv_head_gap(x, p):
    h, moving = x, {}
    for i in range(1, 4):
        h, m = batch_norm(conv(h, p, "trunk%d" % i, padding=1), p, "trunk_bn%d" % i)  # 'same' for 3x3, stride 1
        h = F.relu(h)
        moving.update(m)
        if i < 3:
            h = F.max_pool2d(h, 2)
    features = h.mean(dim=(2, 3))  # GlobalAveragePooling2D
    return features @ p["logits/kernel"] + p["logits/bias"], moving


RESNET_DROPOUT_RATE = 0.5
RESNET_DROPOUT_SEED = 11  # models/resnet.hpp


def resnet1(x, p):
    h = F.relu(conv(x, p, "conv1"))
    h = F.max_pool2d(F.relu(conv(h, p, "conv2")), 3)  # 24x24 -> 8x8, stride 3
    shortcut = h
    h, moving_a = batch_norm(F.relu(conv(h, p, "res1/conv_a", padding=1)), p, "res1/bn_a")
    h, moving_b = batch_norm(conv(h, p, "res1/conv_b", padding=1), p, "res1/bn_b")
    h = F.relu(h + shortcut)
    h = F.relu(conv(h, p, "conv3"))
    h = F.relu(h.mean(dim=(2, 3)) @ p["dense/kernel"] + p["dense/bias"])
    keep = dropout_keep_mask("dropout", RESNET_DROPOUT_SEED, RESNET_DROPOUT_RATE, h.numel())
    h = h * torch.tensor(keep, dtype=h.dtype).reshape(h.shape) / (1 - RESNET_DROPOUT_RATE)
    return h @ p["logits/kernel"] + p["logits/bias"], {**moving_a, **moving_b}


NETWORKS = [("mnist_cnn", mnist_cnn, MNIST_CNN_VARIABLES), ("conv_head_gap", conv_head_gap, CONV_HEAD_GAP_VARIABLES),
            ("resnet1", resnet1, RESNET1_VARIABLES)]


def one_step(net, variables, x, labels):
    """The loss before the update and, per variable, its value after one step minus before."""
    p = {}
    for name, shape, seed in variables:
        trainable = "moving" not in name
        p[name] = torch.tensor(initial_values(name, shape, seed), dtype=torch.float64).reshape(shape).requires_grad_(trainable)
    logits, moving = net(x, p)
    loss = F.cross_entropy(logits, labels)  # mean over the batch
    loss.backward()
    deltas = []
    for name, _, _ in variables:
        d = moving[name] - p[name].detach() if name in moving else -LEARNING_RATE * p[name].grad
        deltas.append((name, d.reshape(-1).tolist()))
    return loss.item(), deltas


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "vision_step_reference.bin"))
    x = torch.tensor(images_nhwc(), dtype=torch.float64).reshape(BATCH, 28, 28, 1).permute(0, 3, 1, 2)
    labels = torch.tensor(LABELS, dtype=torch.int64)
    results = [(network, *one_step(net, variables, x, labels)) for network, net, variables in NETWORKS]

    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "wb") as f:
        f.write(b"kiln-vision-step-reference 2\n")
        for network, loss, _ in results:
            f.write(("loss %s %.17g\n" % (network, loss)).encode())
        for network, _, deltas in results:
            for name, values in deltas:
                f.write(("%s:%s %d\n" % (network, name, len(values))).encode())
        f.write(b"end\n")
        for _, _, deltas in results:
            for _, values in deltas:
                f.write(struct.pack("<%df" % len(values), *values))
    for network, loss, _ in results:
        print("%s: loss %.17g" % (network, loss))
    print("wrote %s (%d bytes)" % (out_path, os.path.getsize(out_path)))


if __name__ == "__main__":
    main()
