"""Makes the data of the transfer-learning example (examples/mnist_transfer.dnn) from
the bundled MNIST digits, in the same IDX format (gzip):

- transfer/pretrain-*: every training digit 0-4 (labels 0-4), to pretrain a backbone;
- transfer/finetune-*: the first 500 training digits 5-9, labels shifted to 0-4;
- transfer/test-*: every test digit 5-9, labels shifted to 0-4.

Run from this folder: python3 make_transfer.py (Python's standard library only).
"""
import gzip
import struct


def read_idx(path):
    raw = gzip.open(path).read()
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return dims, raw[4 + 4 * ndim :]


def write_idx(path, dims, data):
    head = bytes([0, 0, 8, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims)
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(head + bytes(data))


def subset(images, labels, keep, shift, limit=None):
    (_, rows, cols), pixels = images
    _, labs = labels
    size = rows * cols
    out_pix, out_lab = bytearray(), bytearray()
    for i, label in enumerate(labs):
        if keep(label):
            out_pix += pixels[i * size : (i + 1) * size]
            out_lab.append(label - shift)
            if limit is not None and len(out_lab) == limit:
                break
    return (len(out_lab), rows, cols), out_pix, out_lab


def save(name, dims, pixels, labels):
    write_idx(f"transfer/{name}-images-idx3-ubyte.gz", dims, pixels)
    write_idx(f"transfer/{name}-labels-idx1-ubyte.gz", dims[:1], labels)
    print(name, dims[0], "digits")


train = (read_idx("train-images-idx3-ubyte.gz"), read_idx("train-labels-idx1-ubyte.gz"))
test = (read_idx("test-images-idx3-ubyte.gz"), read_idx("test-labels-idx1-ubyte.gz"))
save("pretrain", *subset(*train, keep=lambda l: l < 5, shift=0))
save("finetune", *subset(*train, keep=lambda l: l >= 5, shift=5, limit=500))
save("test", *subset(*test, keep=lambda l: l >= 5, shift=5))
