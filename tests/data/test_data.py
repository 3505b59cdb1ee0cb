"""Data sets: the registry, toy sets, digits, IDX / CIFAR-10 / folder readers, checked downloads."""

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from difflab.data import (
    DownloadError,
    GaussianMixture,
    Resource,
    available_datasets,
    download,
    get_dataset,
    verify_checksum,
)
from difflab.data.download import extract_members, file_digest
from difflab.data.formats import read_idx, safe_load_pickle
from difflab.data.images import IdxSpec, load_idx_split
from difflab.data.toy import TOY_SETS

TOY = ["swiss_roll", "moons", "8gaussians", "checkerboard", "rings"]
MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


# ----------------------------------------------------------------------------------------------
# tiny files written by the tests


def write_idx(path: Path, arr: np.ndarray, type_byte: int = 0x08, compress: bool = True) -> Path:
    """An IDX file: 0, 0, type, ndim, big-endian uint32 sizes, then the big-endian data."""
    header = bytes([0, 0, type_byte, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def fake_idx(folder: Path, prefix: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return images, labels


class Py2Pickler(pickle._Pickler):
    """Writes bytes and str as Python 2's cPickle wrote str (BINSTRING), as CIFAR-10's files are."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def write_cifar_batch(path: Path, n: int, seed: int, style: str = "py2") -> tuple:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    batch = {b"batch_label": b"fake", b"labels": labels, b"data": data, b"filenames": [b"a"] * n}
    buf = io.BytesIO()
    if style == "py2":
        Py2Pickler(buf, protocol=2).dump(batch)
    else:
        pickle.dump(batch, buf, protocol=int(style))
    path.write_bytes(buf.getvalue())
    return data, labels


def fake_cifar(root: Path, n: int = 3) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        write_cifar_batch(folder / name, n, seed=i)
    return folder


def fake_folder(root: Path) -> Path:
    """Two class folders with PNG and JPEG images of several sizes and modes."""
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)).save(root / "cat" / "a.png")
    Image.fromarray(rng.integers(0, 256, (30, 24), dtype=np.uint8)).save(root / "cat" / "b.PNG")
    Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)).save(root / "dog" / "c.jpg")
    (root / "dog" / "notes.txt").write_text("not an image, not listed")
    return root


class Evil:
    """Unpickling this makes a folder: what a malicious pickle would do."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (str(self.target),)


@pytest.fixture
def data_roots(tmp_path):
    """Root folders for every file-backed data set, each with tiny synthetic files."""
    roots = {}
    for name in ("mnist", "fashion_mnist"):
        roots[name] = tmp_path / name
        roots[name].mkdir()
        fake_idx(roots[name], "train", 5, seed=1)
        fake_idx(roots[name], "t10k", 3, seed=2)
    roots["cifar10"] = tmp_path / "cifar"
    fake_cifar(roots["cifar10"])
    roots["folder"] = fake_folder(tmp_path / "images")
    return roots


# ----------------------------------------------------------------------------------------------
# the registry


def test_registry_lists_every_name():
    expected = {*TOY, "mixture-2d", "mixture-d64", "digits", "mnist", "fashion_mnist", "cifar10",
                "folder", "pusht"}
    assert set(available_datasets()) == expected
    assert len(available_datasets()) == len(expected)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'") as e:
        get_dataset("imagenet")
    assert all(name in str(e.value) for name in available_datasets())


def test_aliases_ignore_case_and_dash_or_underscore():
    assert get_dataset("Swiss-Roll", n=10).name == "swiss_roll"
    assert get_dataset("mixture_2d", n=10).name == "mixture-2d"


TRAJECTORIES = {"pusht"}  # items (obs window, action chunk): tests/data/test_pusht.py


@pytest.mark.parametrize("name", sorted(set(available_datasets()) - TRAJECTORIES))
def test_every_dataset_loads_with_the_item_contract(name, data_roots):
    kw = {"n": 500} if name in TOY or name.startswith("mixture") else {}
    if name == "folder":
        kw = {"image_size": 16}
    ds = get_dataset(name, root=data_roots.get(name), **kw)
    assert ds.name == name and len(ds) > 0
    x, y = ds[0]
    assert x.dtype == torch.float32 and tuple(x.shape) == ds.shape
    assert y.dtype == torch.int64 and y.ndim == 0
    X, Y = ds.tensors()
    assert X.shape == (len(ds), *ds.shape) and Y.shape == (len(ds),)
    assert torch.equal(ds[len(ds) - 1][0], X[-1]) and torch.equal(ds[-1][1], Y[-1])
    if len(ds.shape) == 3:  # images in [-1, 1]
        assert float(X.min()) >= -1 and float(X.max()) <= 1
    if ds.num_classes:
        assert bool(((Y >= 0) & (Y < ds.num_classes)).all())
    else:
        assert bool((Y == -1).all())
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_batches_collate_to_x_and_y():
    x, y = next(iter(torch.utils.data.DataLoader(get_dataset("digits"), batch_size=7)))
    assert x.shape == (7, 1, 8, 8) and y.shape == (7,) and y.dtype == torch.int64


# ----------------------------------------------------------------------------------------------
# toy sets and mixtures


@pytest.mark.parametrize("name", TOY)
def test_toy_sets_are_seeded_and_unit_scale(name):
    a, b = get_dataset(name, n=2000, seed=3), get_dataset(name, n=2000, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, get_dataset(name, n=2000, seed=4).x)
    x = get_dataset(name, n=200_000, seed=0).x.double()
    assert x.shape == (200_000, 2) and x.dtype == torch.float64
    assert float(x.mean(0).abs().max()) < 0.02  # centred by the exact mean
    assert abs(float(x.var(0).mean().sqrt()) - 1) < 0.02  # per-coordinate RMS 1
    assert TOY_SETS[name].num_classes == get_dataset(name, n=10).num_classes


def test_toy_labels_follow_the_structure():
    ds = get_dataset("8gaussians", n=4000)
    ang = torch.atan2(ds.x[:, 1], ds.x[:, 0]) % (2 * torch.pi)
    k = torch.round(ang / (torch.pi / 4)).long() % 8
    assert (k == ds.y).float().mean() > 0.99  # label = the nearest centre's index
    rings = get_dataset("rings", n=4000)
    r = rings.x.norm(dim=1) * TOY_SETS["rings"].scale
    assert torch.allclose(r, 0.75 * (rings.y + 1).float(), atol=0.4)


@pytest.mark.parametrize("preset", ["2d", "d64"])
def test_mixture_sets_are_the_mixture_samples(preset):
    ds = get_dataset(f"mixture-{preset}", n=300, seed=5)
    x, y = GaussianMixture.preset(preset).sample(300, seed=5, return_labels=True)
    assert torch.equal(ds.x, x.float()) and torch.equal(ds.y, y)
    assert ds.num_classes == ds.mixture.n_components and ds.shape == (x.shape[1],)


# ----------------------------------------------------------------------------------------------
# digits


def test_digits_values_labels_and_split():
    ds = get_dataset("digits")
    X, Y = ds.tensors()
    assert len(ds) == 1797 and ds.shape == (1, 8, 8) and ds.num_classes == 10
    assert float(X.min()) == -1 and float(X.max()) == 1
    assert torch.equal((X + 1) * 8, torch.round((X + 1) * 8))  # pixel / 8 - 1, pixel in 0..16
    assert torch.equal(Y.bincount(), torch.tensor([178, 182, 177, 183, 181, 182, 181, 179, 174,
                                                   180]))
    train, test = get_dataset("digits", split="train"), get_dataset("digits", split="test")
    assert (len(train), len(test)) == (1437, 360)
    assert torch.equal(train.labels.bincount() + test.labels.bincount(), Y.bincount())


def test_hflip_doubles_with_mirrored_copies():
    ds = get_dataset("digits", hflip=True)
    assert len(ds) == 2 * 1797
    x, y = ds[5]
    xf, yf = ds[1797 + 5]
    assert torch.equal(xf, x.flip(-1)) and y == yf


# ----------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)


def test_idx_round_trip_gzip_and_raw(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.gz", arr)), arr)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", arr, compress=False)), arr)
    ints = np.array([1, -2, 70000], dtype=np.int32)
    assert np.array_equal(read_idx(write_idx(tmp_path / "i.gz", ints, type_byte=0x0C)), ints)


def test_idx_header_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x12\x34\x08\x01" + b"\0" * 8))
    with pytest.raises(ValueError, match="bad.gz: not an IDX file"):
        read_idx(bad)
    short = write_idx(tmp_path / "short", np.zeros((2, 5), np.uint8), compress=False)
    short.write_bytes(short.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"short: IDX header says \(2, 5\)"):
        read_idx(short)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x01x")[:-6])
    with pytest.raises(ValueError, match="broken.gz: corrupt gzip"):
        read_idx(broken)
    huge = tmp_path / "huge"  # sizes whose product overflows int64: still the header message
    huge.write_bytes(b"\0\0\x0d\x03" + struct.pack(">III", 2**31, 2**31, 4))  # header only
    with pytest.raises(ValueError, match=r"huge: IDX header says \(2147483648, 2147483648, 4\)"):
        read_idx(huge)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_sets_read_both_splits(name, tmp_path):
    images, labels = fake_idx(tmp_path, "train", 4, seed=7)
    fake_idx(tmp_path, "t10k", 2, seed=8)
    ds = get_dataset(name, root=tmp_path)
    assert len(ds) == 4 and ds.shape == (1, 28, 28) and ds.num_classes == 10
    x, y = ds[1]
    assert torch.equal(x[0], torch.from_numpy(images[1]).float() * (2 / 255) - 1)
    assert int(y) == labels[1]
    assert len(get_dataset(name, root=tmp_path, split="test")) == 2
    with pytest.raises(ValueError, match="split must be one of train, test"):
        get_dataset(name, root=tmp_path, split="val")


def test_idx_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        get_dataset("mnist", root=tmp_path, split="test")
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path) in msg and "download=True" in msg and "\n" not in msg


def test_idx_inconsistent_files_are_refused(tmp_path):
    fake_idx(tmp_path, "train", 4)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        get_dataset("mnist", root=tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(4, 10, np.uint8))
    with pytest.raises(ValueError, match="label 10 outside 0..9"):
        get_dataset("mnist", root=tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"expected uint8 images \(N, 28, 28\)"):
        get_dataset("mnist", root=tmp_path)


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="no real MNIST test set in shared/data/mnist")
def test_real_mnist_test_set():
    ds = get_dataset("mnist", root=MNIST_DIR, split="test")
    assert len(ds) == 10_000 and ds.shape == (1, 28, 28)
    assert ds.labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert int(ds[0][1]) == 7  # the first test digit is a 7
    assert ds.images.dtype == torch.uint8 and int(ds.images.max()) == 255
    x, _ = ds.tensors()
    assert float(x.min()) == -1 and float(x.max()) == 1 and -0.9 < float(x.mean()) < -0.6


# ----------------------------------------------------------------------------------------------
# CIFAR-10 and the restricted unpickler


@pytest.mark.parametrize("style", ["py2", "2", "4", "5"])
def test_cifar_batch_loads_from_every_pickle_style(tmp_path, style):
    folder = fake_cifar(tmp_path)
    data, labels = write_cifar_batch(folder / "test_batch", 4, seed=9, style=style)
    ds = get_dataset("cifar10", root=tmp_path, split="test")
    assert len(ds) == 4 and ds.shape == (3, 32, 32) and ds.num_classes == 10
    x, y = ds[2]
    assert int(y) == labels[2]
    # R, G, B planes of 32x32 in row-major order
    assert torch.equal(x[1, 3, 5], torch.tensor(float(data[2, 1024 + 3 * 32 + 5])) * (2 / 255) - 1)
    assert len(get_dataset("cifar10", root=folder)) == 15  # root may be the batch folder too


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    folder = fake_cifar(tmp_path)
    target = tmp_path / "pwned"
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(target)}))
    with pytest.raises(ValueError, match="refused to load global posix.mkdir") as e:
        get_dataset("cifar10", root=tmp_path, split="test")
    assert not target.exists() and "\n" not in str(e.value)
    (folder / "x").write_bytes(pickle.dumps([eval, "1+1"]))
    with pytest.raises(ValueError, match="builtins.eval"):
        safe_load_pickle(folder / "x")


def test_corrupt_or_wrong_batches_are_refused(tmp_path):
    folder = fake_cifar(tmp_path)
    (folder / "test_batch").write_bytes((folder / "data_batch_1").read_bytes()[:100])
    with pytest.raises(ValueError, match="test_batch: corrupt pickle"):
        get_dataset("cifar10", root=tmp_path, split="test")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8)}))
    with pytest.raises(ValueError, match="not a CIFAR-10 batch"):
        get_dataset("cifar10", root=tmp_path, split="test")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8),
                                                      b"labels": [None, "cat"]}))
    with pytest.raises(ValueError, match="test_batch: CIFAR-10 labels must be integers"):
        get_dataset("cifar10", root=tmp_path, split="test")
    (folder / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing test_batch in .*; extract .* into "
                                                 r".* \(it holds cifar-10-batches-py/\)"):
        get_dataset("cifar10", root=tmp_path, split="test")


# ----------------------------------------------------------------------------------------------
# folders of images


def test_folder_labels_shapes_and_channels(tmp_path):
    root = fake_folder(tmp_path)
    ds = get_dataset("folder", root=root, image_size=16)
    assert len(ds) == 3 and ds.shape == (3, 16, 16) and ds.num_classes == 2
    assert ds.classes == ["cat", "dog"] and ds.labels.tolist() == [0, 0, 1]
    gray = get_dataset("folder", root=root, image_size=8, channels=1, hflip=True)
    assert gray.shape == (1, 8, 8) and len(gray) == 6
    assert torch.equal(gray[4][0], gray[1][0].flip(-1)) and gray[4][1] == gray[1][1]
    (root / "loose.png").write_bytes((root / "cat" / "a.png").read_bytes())
    assert get_dataset("folder", root=root, image_size=8).num_classes == 0  # not all in classes


def test_folder_scales_16_bit_greyscale_instead_of_clipping(tmp_path):
    (tmp_path / "a").mkdir()
    ramp = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (64, 1))  # 0 .. 65535
    Image.fromarray(ramp).save(tmp_path / "a" / "ramp16.png")
    assert Image.open(tmp_path / "a" / "ramp16.png").mode.startswith("I")
    for channels in (1, 3):
        x, _ = get_dataset("folder", root=tmp_path, image_size=64, channels=channels)[0]
        assert x.min() == -1 and x.max() == 1 and abs(float(x.mean())) < 0.02  # a full ramp


def test_folder_resizes_the_shorter_side_and_crops_the_centre(tmp_path):
    arr = np.zeros((32, 64, 3), np.uint8)
    arr[:, 16:48] = 255  # a white centre square between black side bands
    Image.fromarray(arr).save(tmp_path / "wide.png")
    ds = get_dataset("folder", root=tmp_path, image_size=32)
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and bool((x == 1).all()) and int(y) == -1
    small = get_dataset("folder", root=tmp_path, image_size=8)[0][0]  # halve twice (BOX), crop
    assert bool((small == 1).all())


def test_unreadable_image_is_one_line_naming_the_file(tmp_path):
    root = fake_folder(tmp_path)
    (root / "dog" / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match="cannot read image .*broken.png") as e:
        get_dataset("folder", root=root)
    assert "\n" not in str(e.value) and e.value.__cause__ is None and e.value.__suppress_context__
    lazy = get_dataset("folder", root=root, image_size=8, check=False)
    with pytest.raises(ValueError, match="broken.png"):
        lazy.tensors()
    (root / "dog" / "broken.png").write_bytes((root / "cat" / "a.png").read_bytes()[:60])
    ds = get_dataset("folder", root=root, image_size=8)  # the header reads; the pixels do not
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        ds[2]


def test_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        get_dataset("folder", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_dataset("folder", root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="needs root"):
        get_dataset("folder")
    with pytest.raises(ValueError, match="channels must be 1"):
        get_dataset("folder", root=fake_folder(tmp_path / "f"), channels=4)


def test_datasets_pickle_for_worker_processes(tmp_path):
    folder = get_dataset("folder", root=fake_folder(tmp_path), image_size=8)
    for ds in (get_dataset("digits"), folder):
        copy = pickle.loads(pickle.dumps(ds))
        assert torch.equal(copy[1][0], ds[1][0])


# ----------------------------------------------------------------------------------------------
# checked downloads


def test_verify_checksum_on_a_local_file(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"difflab")
    sha, md5 = hashlib.sha256(b"difflab").hexdigest(), hashlib.md5(b"difflab").hexdigest()
    assert file_digest(p) == sha and file_digest(p, "md5") == md5
    verify_checksum(p, md5=md5, sha256=sha.upper())
    with pytest.raises(ValueError, match="checksum mismatch for .*f.bin: md5"):
        verify_checksum(p, md5="0" * 32)


def test_download_from_file_url_checks_and_renames(tmp_path):
    src = tmp_path / "src" / "blob.bin"
    src.parent.mkdir()
    src.write_bytes(os.urandom(3000))
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "dest"
    missing = Resource("blob.bin", ((tmp_path / "nope.bin").as_uri(), src.as_uri()), sha256=sha)
    path = download(missing, dest)  # the first mirror fails, the second works
    assert path == dest / "blob.bin" and path.read_bytes() == src.read_bytes()
    assert sorted(os.listdir(dest)) == ["blob.bin"]
    assert download(Resource("blob.bin", (), sha256=sha), dest) == path  # present: no fetch
    bad = Resource("other.bin", (src.as_uri(),), md5="0" * 32)
    with pytest.raises(DownloadError, match="checksum mismatch") as e:
        download(bad, dest)
    assert sorted(os.listdir(dest)) == ["blob.bin"] and "\n" not in str(e.value)


def test_download_without_network_is_one_line(tmp_path):
    res = Resource("x.gz", ("http://127.0.0.1:9/x.gz",), md5="0" * 32)
    with pytest.raises(DownloadError, match=r"could not download x.gz \(no network\?\)") as e:
        download(res, tmp_path, timeout=5)
    assert "\n" not in str(e.value) and str(tmp_path) in str(e.value)
    assert os.listdir(tmp_path) == []


def test_idx_download_fetches_missing_files_with_checksums(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    images, labels = fake_idx(mirror, "t10k", 3)
    names = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    spec = IdxSpec("fake", (mirror.as_uri() + "/",),
                   {n: file_digest(mirror / n, "md5") for n in names})
    x, y = load_idx_split(spec, tmp_path / "data", "test", download_missing=True)
    assert torch.equal(x[:, 0], torch.from_numpy(images)) and y.tolist() == labels.tolist()
    assert sorted(os.listdir(tmp_path / "data")) == names


def test_extract_members_writes_only_listed_regular_files(tmp_path):
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in [("d/keep", b"ok"), ("../evil", b"x"), ("d/other", b"y")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("d/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    out = tmp_path / "out"
    extract_members(archive, {"d/keep": "keep"}, out)
    assert os.listdir(out) == ["keep"] and (out / "keep").read_bytes() == b"ok"
    assert not (tmp_path / "evil").exists()
    with pytest.raises(ValueError, match="lacks link"):
        extract_members(archive, {"d/link": "link"}, out)
