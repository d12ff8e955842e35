"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist``; label-skew shards.

The Debian package installs the four original gzip-compressed IDX files under
``/usr/share/datasets/fashion-mnist``::

    train-images-idx3-ubyte.gz   magic 0x00000803, uint8 (60000, 28, 28)
    train-labels-idx1-ubyte.gz   magic 0x00000801, uint8 (60000,)
    t10k-images-idx3-ubyte.gz    magic 0x00000803, uint8 (10000, 28, 28)
    t10k-labels-idx1-ubyte.gz    magic 0x00000801, uint8 (10000,)

They are parsed here with :mod:`gzip` and numpy (no torchvision, no network, nothing
written to disk). The directory can be overridden with the ``data_dir`` argument or the
environment variable ``CLIPASYNC_FASHION_MNIST_DIR``.
"""

from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from clipasync.errors import ConfigError

#: Where the Debian package ``dataset-fashion-mnist`` puts the IDX files.
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Environment variable that overrides :data:`DEFAULT_DIR`.
ENV_VAR = "CLIPASYNC_FASHION_MNIST_DIR"
#: The Debian package that provides the files.
DEBIAN_PACKAGE = "dataset-fashion-mnist"

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: Class names in label order (from the Fashion-MNIST README).
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_IDX_DTYPES: dict[int, npt.DTypeLike] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FashionMNIST:
    """Fashion-MNIST arrays ready for a torch model.

    Attributes:
        x_train: Training images, float32 of shape (N, 1, 28, 28), normalised.
        y_train: Training labels, int64 of shape (N,), values in 0..9.
        x_test: Test images, float32 of shape (M, 1, 28, 28), normalised the same way.
        y_test: Test labels, int64 of shape (M,).
        mean: Pixel mean (of pixels scaled to [0, 1]) subtracted from every image.
        std: Pixel standard deviation every image was divided by.
        classes: Class names in label order.
    """

    x_train: FloatArray
    y_train: IntArray
    x_test: FloatArray
    y_test: IntArray
    mean: float
    std: float
    classes: tuple[str, ...] = CLASSES


def default_data_dir() -> Path:
    """Return the Fashion-MNIST directory: ``$CLIPASYNC_FASHION_MNIST_DIR`` or the
    Debian package's ``/usr/share/datasets/fashion-mnist``."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_DIR


def read_idx(path: Path | str) -> npt.NDArray[np.generic]:
    """Read one (optionally gzip-compressed) IDX file into a numpy array.

    Args:
        path: File name; names ending in ``.gz`` are decompressed in memory.

    Returns:
        A read-only array with the file's shape, in native byte order.

    Raises:
        ConfigError: If the header is not a valid IDX header or the payload size does
            not match it.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ConfigError(f"{path} is not an IDX file (bad magic number)")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ConfigError(
            f"{path}: IDX header says shape {shape} but the payload has "
            f"{len(raw) - header} bytes instead of {expected}"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    arr = arr.astype(dtype.newbyteorder("="), copy=False)
    arr.flags.writeable = False
    return arr


@functools.lru_cache(maxsize=2)
def _read_raw(
    directory: Path,
) -> tuple[npt.NDArray[np.uint8], IntArray, npt.NDArray[np.uint8], IntArray]:
    """Read the four IDX files once per directory (memoised in memory, read-only)."""
    missing = [name for name in FILES.values() if not (directory / name).is_file()]
    if missing:
        raise ConfigError(
            f"Fashion-MNIST not found at {directory} (missing {', '.join(missing)}): "
            f"install the Debian package {DEBIAN_PACKAGE} (make setup does this; or: "
            f"apt-get install {DEBIAN_PACKAGE})"
        )
    arrays = {key: read_idx(directory / name) for key, name in FILES.items()}
    out: list[npt.NDArray[np.generic]] = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1:
            raise ConfigError(
                f"Fashion-MNIST {split} files in {directory} have unexpected shapes "
                f"{images.shape} / {labels.shape}"
            )
        if images.shape[0] != labels.shape[0]:
            raise ConfigError(
                f"Fashion-MNIST {split} files in {directory} disagree: "
                f"{images.shape[0]} images but {labels.shape[0]} labels"
            )
        y = labels.astype(np.int64)
        y.flags.writeable = False
        out += [images.astype(np.uint8, copy=False), y]
    return out[0], out[1], out[2], out[3]  # type: ignore[return-value]


@functools.lru_cache(maxsize=2)
def _pixel_stats(directory: Path) -> tuple[float, float]:
    """Mean and standard deviation of all training pixels scaled to [0, 1] (exact,
    from the 256-bin histogram)."""
    counts = np.bincount(_read_raw(directory)[0].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    total = float(counts.sum())
    mean = float(counts @ values) / total
    var = float(counts @ (values - mean) ** 2) / total
    return mean, float(np.sqrt(var))


def stratified_subset(
    labels: npt.ArrayLike, size: int, rng: np.random.Generator
) -> IntArray:
    """Pick ``size`` indices whose class proportions match those of ``labels``.

    Each class k gets ``floor(size * n_k / n)`` samples; the remaining slots go to the
    classes with the largest fractional parts (ties to the smaller label). Within a
    class the samples are drawn uniformly without replacement with ``rng``.

    Args:
        labels: Integer class labels, shape (n,).
        size: Number of indices wanted, 1 <= size <= n.
        rng: Source of randomness (the result is deterministic given its state).

    Returns:
        Sorted int64 indices into ``labels``.

    Raises:
        ConfigError: If ``size`` is out of range.
    """
    y = np.asarray(labels)
    n = y.shape[0]
    if not 1 <= size <= n:
        raise ConfigError(f"subset size must be in [1, {n}], got {size}")
    classes, counts = np.unique(y, return_counts=True)
    exact = size * counts / n
    quota = np.floor(exact).astype(np.int64)
    remainder = size - int(quota.sum())
    if remainder:
        order = np.lexsort((classes, -(exact - quota)))
        quota[order[:remainder]] += 1
    picked = [
        rng.choice(np.flatnonzero(y == c), size=int(q), replace=False)
        for c, q in zip(classes, quota, strict=True)
        if q > 0
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def load_fashion_mnist(
    data_dir: Path | str | None = None,
    *,
    subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
    normalize: bool = True,
) -> FashionMNIST:
    """Load Fashion-MNIST (60,000 train / 10,000 test images of 28x28 grey pixels).

    Pixels are scaled to [0, 1] and, with ``normalize``, standardised with the mean and
    standard deviation of all 60,000 training images (0.2860 / 0.3530), whatever the
    subset, so that runs on subsets and on the full set see the same inputs.

    Args:
        data_dir: Directory holding the four ``*-ubyte.gz`` files; default
            :func:`default_data_dir`.
        subset: Keep only this many training images (stratified by label, seeded).
        test_subset: Keep only this many test images (stratified, seeded).
        seed: Seed of the subset selection (ignored when no subset is asked for).
        normalize: Standardise pixels; if False they stay in [0, 1] (mean 0, std 1
            are then reported).

    Returns:
        The arrays, in the files' order (sorted by index when subsetted).

    Raises:
        ConfigError: If the files are missing (the message names the Debian package
            and the command to install it) or malformed, or a subset size is invalid.
    """
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    x_tr, y_tr, x_te, y_te = _read_raw(directory)
    mean, std = _pixel_stats(directory) if normalize else (0.0, 1.0)
    rng = np.random.default_rng(seed)
    if subset is not None:
        idx = stratified_subset(y_tr, subset, rng)
        x_tr, y_tr = x_tr[idx], y_tr[idx]
    if test_subset is not None:
        idx = stratified_subset(y_te, test_subset, rng)
        x_te, y_te = x_te[idx], y_te[idx]
    return FashionMNIST(
        x_train=_to_float(x_tr, mean, std),
        y_train=np.array(y_tr, dtype=np.int64),
        x_test=_to_float(x_te, mean, std),
        y_test=np.array(y_te, dtype=np.int64),
        mean=mean,
        std=std,
    )


def _to_float(images: npt.NDArray[np.uint8], mean: float, std: float) -> FloatArray:
    """Scale uint8 images (N, 28, 28) to normalised float32 (N, 1, 28, 28)."""
    x = images.astype(np.float32)[:, None, :, :]
    x *= np.float32(1.0 / (255.0 * std))
    x -= np.float32(mean / std)
    return x


def dirichlet_label_partition(
    labels: npt.ArrayLike,
    num_workers: int,
    alpha: float,
    min_size: int = 10,
    rng: np.random.Generator | None = None,
    max_attempts: int = 100,
) -> list[IntArray]:
    """Split sample indices over workers with Dirichlet(alpha) label proportions.

    The usual label-skew recipe (Hsu et al. 2019; NIID-Bench): for every class k,
    draw p_k ~ Dirichlet(alpha * 1_n), shuffle that class's indices and cut them into
    n consecutive pieces of sizes proportional to p_k. Small alpha gives each worker
    few classes; large alpha approaches an i.i.d. split. The whole draw is repeated
    until every shard has at least ``min_size`` samples.

    Args:
        labels: Integer class labels, shape (N,).
        num_workers: Number of shards n >= 1.
        alpha: Dirichlet concentration > 0 (the paper's Figure 4 uses 0.5).
        min_size: Minimum number of samples per shard.
        rng: Source of randomness; the result is deterministic given its state.
            Default ``np.random.default_rng(0)``.
        max_attempts: Number of draws tried before giving up.

    Returns:
        ``num_workers`` sorted int64 index arrays; every index 0..N-1 is in exactly one.

    Raises:
        ConfigError: On invalid arguments, or if no draw within ``max_attempts``
            gives every shard ``min_size`` samples.
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ConfigError(f"labels must be one-dimensional, got shape {y.shape}")
    if num_workers < 1:
        raise ConfigError(f"num_workers must be >= 1, got {num_workers}")
    if not alpha > 0:
        raise ConfigError(f"alpha must be > 0, got {alpha}")
    if min_size < 0:
        raise ConfigError(f"min_size must be >= 0, got {min_size}")
    if num_workers * min_size > y.shape[0]:
        raise ConfigError(
            f"cannot give {num_workers} workers min_size={min_size} samples each "
            f"from {y.shape[0]} samples"
        )
    if max_attempts < 1:
        raise ConfigError(f"max_attempts must be >= 1, got {max_attempts}")
    rng = rng if rng is not None else np.random.default_rng(0)
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    smallest = 0
    for _ in range(max_attempts):
        pieces: list[list[IntArray]] = [[] for _ in range(num_workers)]
        for idx in by_class:
            p = rng.dirichlet(np.full(num_workers, float(alpha)))
            shuffled = rng.permutation(idx)
            cuts = (np.cumsum(p)[:-1] * idx.shape[0]).astype(np.int64)
            for w, part in enumerate(np.split(shuffled, cuts)):
                pieces[w].append(part)
        shards = [np.sort(np.concatenate(p)).astype(np.int64) for p in pieces]
        smallest = min(s.shape[0] for s in shards)
        if smallest >= min_size:
            return shards
    raise ConfigError(
        f"dirichlet_label_partition: no draw in {max_attempts} attempts gave every one "
        f"of {num_workers} workers >= min_size={min_size} samples (alpha={alpha}, "
        f"last smallest shard {smallest}); raise alpha or lower min_size"
    )
