"""Image data sets in [-1, 1] with their labels: digits, MNIST, Fashion-MNIST, CIFAR-10, folders.

`root` is the folder that holds a set's files (default $DIFFLAB_DATA/<name>, else
~/.cache/difflab/data/<name>). Files are read as published; `download=True` fetches missing ones
with checksums (download.py). `hflip=True` doubles a set with mirrored copies (base.ImageArray).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from difflab.data.base import NO_LABEL, ImageArray, LabeledDataset, _check_index, default_root
from difflab.data.download import Resource, download, extract_members
from difflab.data.formats import read_idx, safe_load_pickle
from difflab.data.registry import register

__all__ = ["CIFAR10_FILES", "IMAGE_SUFFIXES", "FASHION_MNIST", "IdxSpec", "ImageFolder", "MNIST",
           "center_crop_arr", "load_cifar10", "load_digits", "load_idx_split",
           "read_cifar_batch"]

SPLITS = ("train", "test")


def _check_split(split: str, allowed=SPLITS) -> str:
    if split not in allowed:
        raise ValueError(f"split must be one of {', '.join(allowed)}, got {split!r}")
    return split


# ----------------------------------------------------------------------------------------------
# scikit-learn's 8x8 digits (Alpaydin & Kaynak 1998, UCI "optdigits" test set)


def load_digits(split: str = "all") -> tuple[Tensor, Tensor]:
    """sklearn.datasets.load_digits as uint8 images (N, 1, 8, 8), values 0..16, and labels (N,).

    split: "all" (1,797), or a fixed partition by torch.randperm(1797, seed 0): "test" is its
    first 360 indices, "train" the other 1,437 (each in the original order).
    """
    _check_split(split, ("all", *SPLITS))
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise ImportError("the digits need scikit-learn: pip install 'difflab[data]'") from None
    bunch = sk_load_digits()
    images = torch.from_numpy(bunch.images.astype(np.uint8))[:, None]  # (1797, 1, 8, 8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))  # (1797,)
    if split != "all":
        test = torch.zeros(len(labels), dtype=torch.bool)
        test[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:360]] = True
        keep = test if split == "test" else ~test
        images, labels = images[keep], labels[keep]
    return images, labels


@register("digits", "sklearn's 8x8 digits (1797 images, 10 classes), (1, 8, 8); kw split, hflip")
def _digits(root=None, *, split: str = "all", hflip: bool = False) -> ImageArray:
    images, labels = load_digits(split)
    return ImageArray(images, labels, name="digits", num_classes=10, max_value=16, hflip=hflip)


# ----------------------------------------------------------------------------------------------
# MNIST (LeCun et al. 1998) and Fashion-MNIST (Xiao et al. 2017): IDX gzip files


@dataclass(frozen=True)
class IdxSpec:
    """An MNIST-like set: its name, download mirrors and the published MD5 of each .gz file."""

    name: str
    mirrors: tuple[str, ...]  # base URLs, tried in order
    md5: dict[str, str]  # file name -> MD5 of the .gz as published
    image_size: tuple[int, int] = (28, 28)
    num_classes: int = 10

    def files(self, split: str) -> tuple[str, str]:
        """The (images, labels) file names of a split, e.g. t10k-images-idx3-ubyte.gz."""
        prefix = "train" if _check_split(split) == "train" else "t10k"
        return f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"

    def resource(self, filename: str) -> Resource:
        return Resource(filename, tuple(m + filename for m in self.mirrors), md5=self.md5[filename])


MNIST = IdxSpec(
    "mnist",
    ("https://ossci-datasets.s3.amazonaws.com/mnist/",
     "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
     "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
     "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
     "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
)
FASHION_MNIST = IdxSpec(
    "fashion_mnist",
    ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
     "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
     "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
     "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
)


def _find_idx(folder: Path, filename: str) -> Path | None:
    """`folder/filename`, or its gunzipped twin without `.gz`; None if neither exists."""
    for p in (folder / filename, folder / filename.removesuffix(".gz")):
        if p.is_file():
            return p
    return None


def load_idx_split(spec: IdxSpec, root: str | Path | None = None, split: str = "train",
                   download_missing: bool = False) -> tuple[Tensor, Tensor]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 of one split, from root's IDX files.

    The .gz checksums are checked when downloading, not when reading (a recompressed copy is still
    the same data); reading checks the IDX magic numbers (2051 images, 2049 labels) and sizes.
    """
    folder = Path(root).expanduser() if root is not None else default_root(spec.name)
    names = spec.files(split)
    if download_missing:
        for n in names:
            if _find_idx(folder, n) is None:
                download(spec.resource(n), folder)
    paths = [_find_idx(folder, n) for n in names]
    missing = [n for n, p in zip(names, paths, strict=True) if p is None]
    if missing:
        raise FileNotFoundError(
            f"{spec.name} ({split}): missing {', '.join(missing)} in {folder}; place the standard "
            f"IDX files there (from {spec.mirrors[0]}) or pass download=True (on the command "
            f"line: --dataset-kwargs '{{\"download\": true}}')")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    _check_idx_pair(spec, paths, images, labels)
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64))


def _check_idx_pair(spec: IdxSpec, paths, images: np.ndarray, labels: np.ndarray) -> None:
    """Images (N, H, W) uint8, labels (N,) uint8 in [0, num_classes), as the format requires."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != spec.image_size:
        raise ValueError(f"{paths[0]}: expected uint8 images (N, {spec.image_size[0]}, "
                         f"{spec.image_size[1]}) (magic 2051), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{paths[1]}: expected uint8 labels (N,) (magic 2049), "
                         f"got {labels.dtype} {labels.shape}")
    if len(labels) != len(images):
        raise ValueError(f"{paths[1]}: {len(labels)} labels for {len(images)} images")
    if len(labels) and labels.max() >= spec.num_classes:
        raise ValueError(f"{paths[1]}: label {labels.max()} outside 0..{spec.num_classes - 1}")


def _idx_dataset(spec: IdxSpec, root, split: str, download: bool, hflip: bool) -> ImageArray:
    images, labels = load_idx_split(spec, root, split, download)
    return ImageArray(images, labels, name=spec.name, num_classes=spec.num_classes, hflip=hflip)


@register("mnist", "MNIST digits, (1, 28, 28), 10 classes; kw split=train|test, download, hflip")
def _mnist(root=None, *, split: str = "train", download: bool = False,
           hflip: bool = False) -> ImageArray:
    return _idx_dataset(MNIST, root, split, download, hflip)


@register("fashion_mnist", "Fashion-MNIST, (1, 28, 28), 10 classes; kw split, download, hflip")
def _fashion_mnist(root=None, *, split: str = "train", download: bool = False,
                   hflip: bool = False) -> ImageArray:
    return _idx_dataset(FASHION_MNIST, root, split, download, hflip)


# ----------------------------------------------------------------------------------------------
# CIFAR-10 (Krizhevsky 2009): the "python version" batches

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
CIFAR10_ARCHIVE = Resource("cifar-10-python.tar.gz",
                           ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                           md5="c58f30108f718f92721af3b95e74349a")


def _sixteen_bit(img) -> bool:
    """Whether an opened (not yet loaded) PIL image stores 16-bit samples: its mode or the raw
    mode of its data (some Pillow versions open 16-bit PNGs as mode I)."""
    raw = " ".join(str(t[3]) for t in (getattr(img, "tile", None) or []) if len(t) > 3)
    return "16" in img.mode or "16" in raw


def _eight_bit(img, sixteen: bool):
    """16- and 32-bit greyscale images (PIL modes I;16*, I) scaled to 8 bits: PIL's own
    convert("L") would clip them at 255 instead. 16-bit data use the full 0..65535 range; other
    I-mode images are taken as 8-bit unless a value exceeds 255."""
    if not img.mode.startswith("I"):
        return img
    from PIL import Image

    arr = np.asarray(img, dtype=np.float64)
    top = 65535.0 if sixteen or arr.max() > 255 else 255.0
    return Image.fromarray((arr * (255.0 / top)).round().clip(0, 255).astype(np.uint8), "L")


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch: {b'data': uint8 (N, 3072) as R, G, B planes of 32x32, b'labels': [N ints]}
    -> images (N, 3, 32, 32) uint8 and labels (N,) int64, loaded with a SafeUnpickler."""
    batch = safe_load_pickle(path)
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: not a CIFAR-10 batch (a {type(batch).__name__}, not a dict)")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32 or labels is None:
        raise ValueError(f"{path}: not a CIFAR-10 batch (need uint8 data (N, 3072) and labels)")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: CIFAR-10 labels must be integers 0..9") from None
    if len(labels) != len(data) or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"{path}: {len(labels)} labels in 0..9 expected for {len(data)} images")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_dir(root: str | Path | None) -> Path:
    """The folder that holds the batches: root/cifar-10-batches-py, or root itself."""
    folder = Path(root).expanduser() if root is not None else default_root("cifar10")
    known = ("batches.meta", *CIFAR10_FILES["train"], *CIFAR10_FILES["test"])
    if folder.name == CIFAR10_DIR or any((folder / n).is_file() for n in known):
        return folder
    return folder / CIFAR10_DIR


def _download_cifar10(folder: Path) -> None:
    """Fetch the archive (MD5-checked) next to `folder`, extract its batches, drop the archive."""
    archive = download(CIFAR10_ARCHIVE, folder.parent)
    names = (*CIFAR10_FILES["train"], *CIFAR10_FILES["test"], "batches.meta")
    extract_members(archive, {f"{CIFAR10_DIR}/{n}": n for n in names}, folder)
    archive.unlink()


def load_cifar10(root: str | Path | None = None, split: str = "train",
                 download_missing: bool = False) -> tuple[Tensor, Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of a split (50,000 train, 10,000 test)."""
    folder = _cifar_dir(root)
    names = CIFAR10_FILES[_check_split(split)]
    if download_missing and not all((folder / n).is_file() for n in names):
        _download_cifar10(folder)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"cifar10 ({split}): missing {', '.join(missing)} in {folder}; extract "
            f"{CIFAR10_ARCHIVE.urls[0]} into {folder.parent} (it holds {folder.name}/) or pass "
            f"download=True (on the command line: --dataset-kwargs '{{\"download\": true}}')")
    parts = [read_cifar_batch(folder / n) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return torch.from_numpy(images), torch.from_numpy(labels)


@register("cifar10", "CIFAR-10, (3, 32, 32), 10 classes; kw split=train|test, download, hflip")
def _cifar10(root=None, *, split: str = "train", download: bool = False,
             hflip: bool = False) -> ImageArray:
    images, labels = load_cifar10(root, split, download)
    return ImageArray(images, labels, name="cifar10", num_classes=10, hflip=hflip)


# ----------------------------------------------------------------------------------------------
# Any folder of PNG / JPEG images

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def center_crop_arr(img, image_size: int) -> np.ndarray:
    """Resize the shorter side to image_size and centre-crop (ADM, guided_diffusion
    image_datasets.py): halve with BOX while >= 2x too big, then BICUBIC; (H, W[, C]) uint8."""
    from PIL import Image

    while min(img.size) >= 2 * image_size:
        img = img.resize(tuple(s // 2 for s in img.size), resample=Image.Resampling.BOX)
    scale = image_size / min(img.size)
    img = img.resize(tuple(max(image_size, round(s * scale)) for s in img.size),
                     resample=Image.Resampling.BICUBIC)
    arr = np.asarray(img)
    top, left = (arr.shape[0] - image_size) // 2, (arr.shape[1] - image_size) // 2
    return arr[top:top + image_size, left:left + image_size]


def _list_images(folder: Path) -> list[Path]:
    """Every PNG / JPEG under folder (recursively, any case of suffix), sorted by relative path."""
    files = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


class ImageFolder(LabeledDataset):
    """The PNG / JPEG images under `root`, resized (shorter side) and centre-cropped to image_size.

    channels: 3 (RGB) or 1 (grayscale). Labels: when every image lies in a first-level subfolder
    and there are at least two of them, the subfolder (sorted names, as torchvision's
    ImageFolder); else -1. hflip=True doubles the set: item N + i is item i mirrored (see
    base.ImageArray). check=True opens every file's header at construction, so an unreadable file
    is reported before training; any file that fails later raises the same one-line ValueError.
    """

    def __init__(self, root: str | Path, image_size: int = 64, channels: int = 3,
                 hflip: bool = False, check: bool = True):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
        if int(image_size) < 1:
            raise ValueError(f"image_size must be positive, got {image_size!r}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist")
        self.files = _list_images(self.root)
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {self.root}")
        self.classes, self.labels = self._find_labels()
        self.image_size, self.channels, self.hflip = int(image_size), channels, bool(hflip)
        self.name, self.num_classes = "folder", len(self.classes)
        self.shape = (channels, self.image_size, self.image_size)
        if check:
            for p in self.files:
                self._open(p).close()

    def _find_labels(self) -> tuple[list[str], Tensor]:
        """Class names and (N,) labels: the first-level subfolder, if all files have one."""
        parts = [p.relative_to(self.root).parts for p in self.files]
        classes = sorted({q[0] for q in parts if len(q) > 1})
        if len(classes) < 2 or any(len(q) == 1 for q in parts):
            return [], torch.full((len(parts),), NO_LABEL, dtype=torch.long)
        index = {c: k for k, c in enumerate(classes)}
        return classes, torch.tensor([index[q[0]] for q in parts], dtype=torch.long)

    @staticmethod
    def _open(path: Path):
        """PIL's lazy open (reads the header only); ValueError naming the file if it cannot."""
        from PIL import Image

        try:
            return Image.open(path)
        except Exception as e:  # PIL raises many types for bad files
            raise ValueError(f"cannot read image {path}: {type(e).__name__}: {e}") from None

    def load(self, i: int) -> np.ndarray:
        """Image i (0 <= i < len(files)) as uint8 (H, W, C), resized and centre-cropped."""
        from PIL import ImageOps

        path = self.files[i]
        with self._open(path) as img:
            try:
                sixteen = _sixteen_bit(img)  # before loading: the file's own pixel format
                img = _eight_bit(ImageOps.exif_transpose(img), sixteen)
                img = img.convert("RGB" if self.channels == 3 else "L")
                arr = center_crop_arr(img, self.image_size)
            except Exception as e:  # truncated or corrupt data behind a valid header
                raise ValueError(f"cannot read image {path}: {type(e).__name__}: {e}") from None
        return arr.reshape(self.image_size, self.image_size, self.channels)

    def __len__(self) -> int:
        return len(self.files) * (2 if self.hflip else 1)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        i = _check_index(i, len(self))
        n = len(self.files)
        x = torch.from_numpy(self.load(i % n).copy()).permute(2, 0, 1)  # (C, H, W) uint8
        if i >= n:
            x = x.flip(-1)
        return x.to(torch.float32) * (2.0 / 255) - 1.0, self.labels[i % n]  # as ImageArray


@register("folder", "PNG/JPEG images under root; kw image_size=64, channels=3, hflip, check")
def _folder(root=None, *, image_size: int = 64, channels: int = 3, hflip: bool = False,
            check: bool = True) -> ImageFolder:
    if root is None:
        raise ValueError("the folder dataset needs root=<a folder of PNG/JPEG images>")
    return ImageFolder(root, image_size, channels, hflip, check)
