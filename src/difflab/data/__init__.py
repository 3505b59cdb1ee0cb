"""Data: toy 2-D sets, image sets and the analytic Gaussian mixture, behind one registry.

    ds = difflab.data.get_dataset("digits")      # items (x, y): x float32 in [-1, 1], y int64
    ds.shape, ds.num_classes, ds.name            # (1, 8, 8), 10, "digits"

Names: difflab.data.available_datasets(). Images are (C, H, W) in [-1, 1]; low-dimensional data
is (D,); y is the class label, or -1 for unlabelled sets.
"""

from difflab.data import images, pusht, toy  # noqa: F401  (registers the data sets)
from difflab.data.base import NO_LABEL, ImageArray, LabeledDataset, TensorSet
from difflab.data.download import DownloadError, Resource, download, verify_checksum
from difflab.data.images import ImageFolder
from difflab.data.mixture import GaussianMixture
from difflab.data.registry import DatasetInfo, available_datasets, dataset_info, get_dataset

__all__ = [
    "NO_LABEL",
    "DatasetInfo",
    "DownloadError",
    "GaussianMixture",
    "ImageArray",
    "ImageFolder",
    "LabeledDataset",
    "Resource",
    "TensorSet",
    "available_datasets",
    "dataset_info",
    "download",
    "get_dataset",
    "verify_checksum",
]
