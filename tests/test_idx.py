"""IDX reading: good files (gzip and raw, by content not name) and every user-facing failure."""

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from mnistlab.data.idx import read_idx, sha256_hex
from mnistlab.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x00000800 | array.ndim
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


IMAGES = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
LABELS = np.array([7, 0, 9], dtype=np.uint8)


@pytest.mark.parametrize("compress", [False, True])
def test_reads_raw_and_gzip_files(tmp_path, compress):
    raw = idx_bytes(IMAGES)
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    out = read_idx(path, expected_shape_tail=(4, 4))
    assert out.dtype == np.uint8 and out.shape == (3, 4, 4)
    np.testing.assert_array_equal(out, IMAGES)


def test_gzip_detected_by_content_not_name(tmp_path):
    raw_named_gz = tmp_path / "labels.gz"
    raw_named_gz.write_bytes(idx_bytes(LABELS))
    gz_named_raw = tmp_path / "labels"
    gz_named_raw.write_bytes(gzip.compress(idx_bytes(LABELS)))
    for path in (raw_named_gz, gz_named_raw):
        np.testing.assert_array_equal(read_idx(path, expected_shape_tail=()), LABELS)


def test_reads_bytes():
    np.testing.assert_array_equal(read_idx(gzip.compress(idx_bytes(LABELS))), LABELS)


def test_sha256_is_of_decompressed_bytes(tmp_path):
    raw = idx_bytes(IMAGES)
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "b.gz").write_bytes(gzip.compress(raw))
    expected = hashlib.sha256(raw).hexdigest()
    assert sha256_hex(tmp_path / "a") == sha256_hex(tmp_path / "b.gz") == expected


def _broken(kind: str) -> bytes:
    raw = idx_bytes(IMAGES)
    return {
        "bad magic": b"\x50\x4b\x03\x04" + raw[4:],  # a zip file, say
        "truncated": raw[:-8],
        "trailing": raw + b"\x00\x00",
        "header": raw[:10],
        "corrupt gzip": gzip.compress(raw)[:-12],
    }[kind]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("bad magic", r"not an IDX file \(bad magic 0x504b0304\)"),
        ("truncated", r"truncated \(expected 48 bytes of pixels, found 40\)"),
        ("trailing", r"2 trailing bytes after 48 bytes of pixels"),
        ("header", r"truncated \(header needs 16 bytes, found 10\)"),
        ("corrupt gzip", r"corrupt gzip stream"),
    ],
)
def test_bad_files_raise_one_line_data_error(tmp_path, kind, message):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(_broken(kind))
    with pytest.raises(DataError, match=message) as excinfo:
        read_idx(path)
    text = str(excinfo.value)
    assert text.startswith(str(path)) and "mnistlab data fetch" in text and "\n" not in text


def test_wrong_shape_and_missing_file(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(idx_bytes(IMAGES))
    with pytest.raises(DataError, match=r"unexpected shape \[3, 4, 4\] \(expected \[N, 28, 28\]\)"):
        read_idx(path, expected_shape_tail=(28, 28))
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "nope")


def test_non_ubyte_type_is_rejected():
    raw = struct.pack(">II", 0x00000D01, 1) + b"\x00" * 4  # float32 labels
    with pytest.raises(DataError, match="bad magic 0x00000d01"):
        read_idx(raw)


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="shared MNIST copy not present")
def test_real_mnist_test_images():
    images = read_idx(SHARED / "mnist" / "t10k-images-idx3-ubyte.gz", expected_shape_tail=(28, 28))
    assert images.shape == (10000, 28, 28) and images.max() == 255
