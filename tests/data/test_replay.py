"""The replay-store reader, on tiny zarr v2 stores written here."""

import subprocess
import sys

import numpy as np
import pytest

from difflab.data.replay import MissingDependencyError, read_replay

zarr = pytest.importorskip("zarr")


def write_store(path, lengths=(5, 3, 4), *, n_contacts=True, skip=(), dtype=np.float32):
    """A replay store like Push-T's: data/state (N, 5), action (N, 2), keypoint (N, 9, 2),
    n_contacts (N, 1), meta/episode_ends (E,); the arrays named in `skip` left out."""
    rng = np.random.default_rng(0)
    n = int(sum(lengths))
    arrays = {"data/state": rng.uniform(0, 512, (n, 5)), "data/action": rng.uniform(0, 512, (n, 2)),
              "data/keypoint": rng.uniform(0, 512, (n, 9, 2)),
              "meta/episode_ends": np.cumsum(lengths).astype(np.int64)}
    if n_contacts:
        arrays["data/n_contacts"] = rng.integers(0, 3, (n, 1)).astype(np.float32)
    root = zarr.open_group(str(path), mode="w")
    for key, a in arrays.items():
        if key not in skip:
            root.create_dataset(key, data=a if key.startswith("meta") else a.astype(dtype),
                                chunks=(4, *a.shape[1:]))
    return {k.split("/")[1]: a for k, a in arrays.items()}


def test_reads_every_array(tmp_path):
    written = write_store(tmp_path / "r.zarr")
    got = read_replay(tmp_path / "r.zarr")
    assert set(got) == {"state", "action", "keypoint", "n_contacts", "episode_ends"}
    for k, a in written.items():
        np.testing.assert_allclose(got[k], a.astype(got[k].dtype))
    assert got["state"].dtype == np.float32 and got["state"].shape == (12, 5)
    assert got["episode_ends"].dtype == np.int64 and got["episode_ends"].tolist() == [5, 8, 12]


def test_n_contacts_is_optional(tmp_path):
    write_store(tmp_path / "r.zarr", n_contacts=False)
    assert "n_contacts" not in read_replay(str(tmp_path / "r.zarr"))


@pytest.mark.parametrize("key", ["data/state", "data/action", "data/keypoint",
                                 "meta/episode_ends"])
def test_a_missing_array_is_named(tmp_path, key):
    write_store(tmp_path / "r.zarr", skip=(key,))
    with pytest.raises(ValueError, match=f"the replay store has no {key};"):
        read_replay(tmp_path / "r.zarr")


def test_a_path_that_is_not_a_store(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="is not a zarr v2 replay store"):
        read_replay(tmp_path / "folder")
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(ValueError, match="is not a zarr v2 replay store"):
        read_replay(tmp_path / "file.txt")
    with pytest.raises(FileNotFoundError, match="no replay store at"):
        read_replay(tmp_path / "nothing.zarr")


def test_shapes_must_agree(tmp_path):
    root = zarr.open_group(str(tmp_path / "a.zarr"), mode="w")
    root.create_dataset("data/state", data=np.zeros((6, 5)))
    root.create_dataset("data/action", data=np.zeros((5, 2)))
    root.create_dataset("data/keypoint", data=np.zeros((6, 9, 2)))
    root.create_dataset("meta/episode_ends", data=np.array([6]))
    with pytest.raises(ValueError, match="data/action has 5 frames but data/state has 6"):
        read_replay(tmp_path / "a.zarr")
    root["data/action"] = np.zeros((6, 2))
    root["meta/episode_ends"] = np.array([4, 5])
    with pytest.raises(ValueError, match="meta/episode_ends: the last episode ends at 5 but "
                                         "there are 6 frames"):
        read_replay(tmp_path / "a.zarr")
    root["meta/episode_ends"] = np.array([4, 2, 6])
    with pytest.raises(ValueError, match="ascending"):
        read_replay(tmp_path / "a.zarr")
    root["meta/episode_ends"] = np.array([6])
    root["data/keypoint"] = np.zeros((6, 18))
    with pytest.raises(ValueError, match="data/keypoint has shape"):
        read_replay(tmp_path / "a.zarr")


def test_missing_zarr_names_the_extra(tmp_path, monkeypatch):
    write_store(tmp_path / "r.zarr")
    monkeypatch.setitem(sys.modules, "zarr", None)  # `import zarr` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'difflab\[pusht\]'") as e:
        read_replay(tmp_path / "r.zarr")
    assert isinstance(e.value, ImportError) and isinstance(e.value, ValueError)
    assert "\n" not in str(e.value)


def test_importing_difflab_data_does_not_import_zarr():
    code = "import sys, difflab.data; assert 'zarr' not in sys.modules, 'zarr imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
