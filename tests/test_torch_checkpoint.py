"""Reading PyTorch checkpoints without PyTorch: values, safety, errors.

The fixtures are in tests/fixtures/pth: sample_checkpoint*.pth and
malicious.pth come from the project's shared fixtures, the others from
make_extra_fixtures.py (which needs torch; no test runs it). Other files are
written here, with `tests/torch_files.py`, which pickles references to torch
globals without torch being installed.
"""

import collections
import os
import pickle
import posix
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from gff_keras.convert import CheckpointError
from gff_keras.convert import UnsafeCheckpointError
from gff_keras.convert import load_torch_checkpoint
from gff_keras.convert import read_torch_checkpoint
from gff_keras.convert import torch_checkpoint
from tests.torch_files import Call
from tests.torch_files import Global
from tests.torch_files import Storage
from tests.torch_files import tensor
from tests.torch_files import torch_pickle
from tests.torch_files import write_legacy
from tests.torch_files import write_zip

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "pth")
SAMPLE = os.path.join(FIXTURES, "sample_checkpoint.pth")
SAMPLE_LEGACY = os.path.join(FIXTURES, "sample_checkpoint_legacy.pth")
MALICIOUS = os.path.join(FIXTURES, "malicious.pth")
MODULE_FILE = torch_checkpoint.__file__

SAMPLES = pytest.mark.parametrize(
    "path", [SAMPLE, SAMPLE_LEGACY], ids=["zip", "legacy"]
)


def expected(name):
    with np.load(os.path.join(FIXTURES, name)) as arrays:
        return {key: arrays[key] for key in arrays.files}


def assert_same_arrays(actual, wanted):
    assert list(actual) == list(wanted)
    for key, value in wanted.items():
        assert actual[key].dtype == value.dtype, key
        assert actual[key].shape == value.shape, key
        np.testing.assert_array_equal(actual[key], value, err_msg=key)


def assert_independent(arrays):
    arrays = list(arrays)
    for array in arrays:
        assert array.flags.c_contiguous and array.flags.writeable
    for i, first in enumerate(arrays):
        for second in arrays[i + 1 :]:
            assert not np.shares_memory(first, second)


def rewrite_zip(source, target, edit):
    """Copies a zip, passing each record through edit(name, data)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = edit(name, old.read(name))
            if data is not None:
                new.writestr(name, data)
    return target


class Exploit:
    """Pickles as a call of os.system: what an attacker would write."""

    def __reduce__(self):
        return os.system, ("echo PWNED > pwned.txt",)


# The sample checkpoints.


@SAMPLES
def test_state_dict_matches_expected_arrays(path):
    checkpoint = load_torch_checkpoint(path)

    # The npz is keyed like the saved state_dict, "module." prefix included.
    state_dict = checkpoint["state_dict"]
    assert isinstance(state_dict, collections.OrderedDict)
    wanted = expected("sample_checkpoint_expected.npz")
    assert all(key.startswith("module.") for key in wanted)
    assert_same_arrays(state_dict, wanted)
    assert state_dict["module.transposed_view"].shape == (7, 6)
    assert state_dict["module.half"].dtype == np.float16
    assert state_dict["module.bn.num_batches_tracked"].shape == ()


@SAMPLES
def test_other_entries_are_plain_values(path):
    checkpoint = load_torch_checkpoint(path)

    assert checkpoint["epoch"] == 175
    assert checkpoint["mean_iu"] == pytest.approx(0.8123)
    assert checkpoint["optimizer"] == {
        "state": {},
        "param_groups": [{"lr": 0.01}],
    }


@SAMPLES
def test_read_unwraps_state_dict_and_strips_module_prefix(path):
    weights = read_torch_checkpoint(path)

    wanted = {
        key.removeprefix("module."): value
        for key, value in expected("sample_checkpoint_expected.npz").items()
    }
    assert type(weights) is dict
    assert_same_arrays(weights, wanted)


@SAMPLES
def test_arrays_sharing_a_storage_are_independent_copies(path):
    weights = read_torch_checkpoint(path)
    assert_independent(weights.values())

    # transposed_view and offset_view are views of one storage.
    offset_view = weights["offset_view"].copy()
    weights["transposed_view"][...] = -1.0

    np.testing.assert_array_equal(weights["offset_view"], offset_view)


def test_formats_give_the_same_arrays():
    assert_same_arrays(
        read_torch_checkpoint(SAMPLE_LEGACY), read_torch_checkpoint(SAMPLE)
    )


# More dtypes and layouts (written by make_extra_fixtures.py).


@pytest.mark.parametrize(
    "name", ["extra_dtypes.pth", "extra_dtypes_legacy.pth"]
)
def test_extra_dtypes_and_layouts(name):
    path = os.path.join(FIXTURES, name)
    wanted = expected("extra_dtypes_expected.npz")
    if "legacy" in name:
        del wanted["uint16"]  # not in the legacy fixture

    # A bare state dict: no wrapper, no prefix, so no key changes.
    weights = read_torch_checkpoint(path)

    assert_same_arrays(weights, wanted)
    assert_independent(weights.values())
    assert weights["bfloat16"].dtype == np.float32
    assert weights["scalar"].shape == () and weights["scalar"] == 2.75
    assert weights["empty"].shape == (0, 3)
    # Written from a zero-stride broadcast, yet its rows are separate.
    weights["broadcast"][0, 0] = 9.0
    assert weights["broadcast"][1, 0] == 1.0


def test_metadata_values_are_readable():
    path = os.path.join(FIXTURES, "metadata_values.pth")

    checkpoint = load_torch_checkpoint(path)

    assert checkpoint["epoch"] == 3 and type(checkpoint["epoch"]) is np.int64
    assert checkpoint["mean_iu"] == 0.75
    assert type(checkpoint["mean_iu"]) is np.float64
    assert checkpoint["device"] == "cuda:0"
    assert checkpoint["dtype"] == "torch.float16"
    assert checkpoint["size"] == (2, 3)
    assert checkpoint["tags"] == {"crop", "flip"}
    assert checkpoint["blob"] == b"\x00\xff"
    assert list(read_torch_checkpoint(path)) == ["weight"]


def test_accepts_path_objects(tmp_path):
    path = tmp_path / "copy.pth"
    path.write_bytes(open(SAMPLE, "rb").read())

    assert "half" in read_torch_checkpoint(path)


# Written here: layouts and records the fixtures lack.


def test_big_endian_zip_is_byteswapped(tmp_path):
    values = {
        "f": np.array([[1.5, -2.0], [3.0, 1e-3]], np.float32),
        "h": np.array([0.5, -1.0], np.float16),
        "q": np.array([1, -(2**40)], np.int64),
        "b": np.array([1.5, -0.25], np.float32),  # bfloat16-exact
        "t": np.array([True, False]),
    }
    bfloat16 = (values["b"].view(np.uint32) >> 16).astype(np.uint16)
    records = {
        "0": values["f"].astype(">f4").tobytes(),
        "1": values["h"].astype(">f2").tobytes(),
        "2": values["q"].astype(">i8").tobytes(),
        "3": bfloat16.astype(">u2").tobytes(),
        "4": values["t"].tobytes(),
    }
    obj = {
        "f": tensor(Storage("torch.FloatStorage", "0", 4), 0, (2, 2), (2, 1)),
        "h": tensor(Storage("torch.HalfStorage", "1", 2), 0, (2,), (1,)),
        "q": tensor(Storage("torch.LongStorage", "2", 2), 0, (2,), (1,)),
        "b": tensor(Storage("torch.BFloat16Storage", "3", 2), 0, (2,), (1,)),
        "t": tensor(Storage("torch.BoolStorage", "4", 2), 0, (2,), (1,)),
    }
    path = write_zip(
        tmp_path / "big.pth", torch_pickle(obj), records, byteorder=b"big"
    )

    weights = read_torch_checkpoint(path)

    assert_same_arrays(weights, values)
    assert all(value.dtype.isnative for value in weights.values())


def test_zip_without_byteorder_record_is_little_endian(tmp_path):
    obj = {"w": tensor(Storage("torch.FloatStorage", "0", 2), 0, (2,), (1,))}
    data = np.array([1.0, 2.0], "<f4").tobytes()
    path = write_zip(
        tmp_path / "old.pth", torch_pickle(obj), {"0": data}, byteorder=None
    )

    np.testing.assert_array_equal(read_torch_checkpoint(path)["w"], [1, 2])


def test_legacy_storage_views(tmp_path):
    # Before torch 1.0 a storage could be a slice of another: a sixth field
    # (view key, offset, numel) in the persistent id.
    root = np.arange(10, dtype=np.float32)
    view = Storage("torch.FloatStorage", "root", 10, ("view", 4, 6))
    obj = {"w": tensor(view, 1, (2, 2), (1, 2))}
    path = write_legacy(
        tmp_path / "views.pth",
        torch_pickle(obj),
        {"root": (10, root.tobytes())},
    )

    weights = read_torch_checkpoint(path)

    np.testing.assert_array_equal(weights["w"], [[5, 7], [6, 8]])


def test_tensor_reaching_past_its_storage_is_an_error(tmp_path):
    obj = {"w": tensor(Storage("torch.FloatStorage", "0", 4), 1, (2,), (3,))}
    path = write_zip(tmp_path / "over.pth", torch_pickle(obj), {"0": b"0" * 16})

    with pytest.raises(CheckpointError, match="reach element 4") as error:
        read_torch_checkpoint(path)
    assert str(error.value).startswith(f"{path}: tensor ['w']")


def test_unsupported_dtype_is_an_error(tmp_path):
    obj = {"w": tensor(Storage("torch.QInt8Storage", "0", 4), 0, (4,), (1,))}
    path = write_zip(tmp_path / "q.pth", torch_pickle(obj), {"0": b"0" * 4})

    with pytest.raises(CheckpointError, match="unsupported dtype torch.qint8"):
        read_torch_checkpoint(path)


def test_unsupported_v3_dtype_is_an_error(tmp_path):
    obj = {
        "w": Call(
            Global("torch._utils._rebuild_tensor_v3"),
            Storage("torch.storage.UntypedStorage", "0", 4),
            0,
            (4,),
            (1,),
            False,
            collections.OrderedDict(),
            Global("torch.float8_e4m3fn"),
        )
    }
    path = write_zip(tmp_path / "f8.pth", torch_pickle(obj), {"0": b"0" * 4})

    with pytest.raises(CheckpointError, match="torch.float8_e4m3fn") as error:
        read_torch_checkpoint(path)
    assert not isinstance(error.value, UnsafeCheckpointError)


def test_sparse_tensor_is_an_error(tmp_path):
    obj = {"w": Call(Global("torch._utils._rebuild_sparse_tensor"), 1)}
    path = write_zip(tmp_path / "sparse.pth", torch_pickle(obj), {})

    with pytest.raises(CheckpointError, match="only dense tensors"):
        read_torch_checkpoint(path)


# Safety.


def test_malicious_checkpoint_is_refused_and_runs_nothing(
    tmp_path, monkeypatch
):
    calls = []
    monkeypatch.setattr(os, "system", lambda *args: calls.append(args))
    # The pickle names posix.system, the same function as os.system.
    monkeypatch.setattr(posix, "system", lambda *args: calls.append(args))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: calls.append(a))
    monkeypatch.chdir(tmp_path)

    with pytest.raises(UnsafeCheckpointError) as error:
        read_torch_checkpoint(MALICIOUS)

    message = str(error.value)
    assert message.startswith(f"{MALICIOUS}: refusing to unpickle")
    assert "'posix.system'" in message
    assert isinstance(error.value, ValueError)
    assert calls == []
    assert list(tmp_path.iterdir()) == []


def read_in_subprocess(path, cwd):
    """Reads `path` in a fresh interpreter that cannot import torch.

    The module is loaded from its file, not through `gff_keras`, whose
    package import would bring in TensorFlow: it needs only numpy.
    """
    script = textwrap.dedent(
        """
        import importlib.abc
        import importlib.util
        import sys

        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch must not be imported")

        sys.meta_path.insert(0, NoTorch())
        module_file, checkpoint = sys.argv[1:]
        spec = importlib.util.spec_from_file_location("reader", module_file)
        reader = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(reader)
        try:
            weights = reader.read_torch_checkpoint(checkpoint)
            print(sorted(weights))
        except ValueError as error:
            print(type(error).__name__, error)
        print("torch imported:", "torch" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, MODULE_FILE, str(path)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_malicious_checkpoint_creates_no_file(tmp_path):
    output = read_in_subprocess(MALICIOUS, cwd=tmp_path)

    assert "UnsafeCheckpointError" in output and "posix.system" in output
    assert "PWNED" not in output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", [SAMPLE, SAMPLE_LEGACY, MALICIOUS])
def test_torch_is_never_imported(path, tmp_path):
    output = read_in_subprocess(path, cwd=tmp_path)

    assert "torch imported: False" in output


@pytest.mark.parametrize("protocol", [2, 4])  # GLOBAL, STACK_GLOBAL
def test_pickled_os_system_is_refused(tmp_path, protocol):
    path = write_zip(
        tmp_path / "exploit.pth", pickle.dumps(Exploit(), protocol), {}
    )

    with pytest.raises(UnsafeCheckpointError, match=r"'(posix|os)\.system'"):
        load_torch_checkpoint(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exploit.pth"]


@pytest.mark.parametrize(
    "name",
    [
        "builtins.eval",
        "builtins.getattr",
        "subprocess.Popen",
        "torch.load",
        "numpy.load",
        "torch.nn.modules.conv.Conv2d",
    ],
)
def test_globals_outside_the_allow_list_are_refused(tmp_path, name):
    obj = {"w": Call(Global(name), "print('ran')")}
    path = write_zip(tmp_path / "bad.pth", torch_pickle(obj), {})

    with pytest.raises(UnsafeCheckpointError, match=f"'{name}'"):
        load_torch_checkpoint(path)


def test_refused_call_nested_in_a_tensor_is_refused(tmp_path):
    hooks = Call(Global("os.system"), "echo PWNED > pwned.txt")
    obj = {
        "w": Call(
            Global("torch._utils._rebuild_tensor_v2"),
            Storage("torch.FloatStorage", "0", 1),
            0,
            (1,),
            (1,),
            False,
            hooks,
        )
    }
    path = write_zip(tmp_path / "nested.pth", torch_pickle(obj), {"0": b"0000"})

    with pytest.raises(UnsafeCheckpointError, match="'os.system'"):
        read_torch_checkpoint(path)


def test_legacy_malicious_checkpoint_is_refused(tmp_path):
    path = write_legacy(
        tmp_path / "exploit.pth", pickle.dumps(Exploit(), protocol=2), {}
    )

    with pytest.raises(UnsafeCheckpointError, match=r"'posix\.system'"):
        read_torch_checkpoint(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exploit.pth"]


def test_pickled_module_source_is_refused(tmp_path):
    # Legacy saves of whole models give each class's source this way,
    # ("module", class, file, source); the class alone is refused, and so is
    # the persistent id.
    class ModuleId:
        pid = ("module", Global("torch.nn.Linear"), "source.py", "class ...")

    class ModuleIdByName:
        pid = ("module", "Linear", "source.py", "class ...")

    path = write_legacy(tmp_path / "model.pth", torch_pickle(ModuleId()), {})
    with pytest.raises(UnsafeCheckpointError, match="'torch.nn.Linear'"):
        read_torch_checkpoint(path)

    pickled = torch_pickle(ModuleIdByName())
    path = write_legacy(tmp_path / "by_name.pth", pickled, {})
    with pytest.raises(UnsafeCheckpointError, match="persistent id 'module'"):
        read_torch_checkpoint(path)


def test_numpy_object_dtype_is_refused(tmp_path):
    obj = {
        "x": Call(
            Global("numpy.core.multiarray.scalar"),
            Call(Global("numpy.dtype"), "O8", False, True),
            b"12345678",
        )
    }
    path = write_zip(tmp_path / "object.pth", torch_pickle(obj), {})

    with pytest.raises(UnsafeCheckpointError, match="numpy dtype 'O8'"):
        load_torch_checkpoint(path)


# Errors that name the file.


def test_missing_file(tmp_path):
    path = tmp_path / "missing.pth"

    with pytest.raises(FileNotFoundError, match=str(path)):
        read_torch_checkpoint(path)


def test_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        read_torch_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"epoch,mean_iu\n175,0.8123\n",
        bytes(range(256)) * 4,
        pickle.dumps({"state_dict": {}}, protocol=2),
    ],
    ids=["empty", "text", "binary", "plain_pickle"],
)
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)

    with pytest.raises(CheckpointError) as error:
        read_torch_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    assert "checkpoint" in message and "\n" not in message


@SAMPLES
@pytest.mark.parametrize("fraction", [0.002, 0.05, 0.3, 0.6, 0.9, 0.999])
def test_truncated_file(tmp_path, path, fraction):
    data = open(path, "rb").read()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: max(1, int(len(data) * fraction))])

    with pytest.raises(CheckpointError) as error:
        read_torch_checkpoint(truncated)
    assert str(error.value).startswith(f"{truncated}: ")
    assert "\n" not in str(error.value)


def test_truncated_legacy_storage(tmp_path):
    data = open(SAMPLE_LEGACY, "rb").read()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[:-3])

    with pytest.raises(
        CheckpointError, match=r"is truncated: \d+ bytes needed"
    ):
        read_torch_checkpoint(truncated)


def test_truncated_zip_storage_record(tmp_path):
    path = rewrite_zip(
        SAMPLE,
        tmp_path / "short.pth",
        lambda name, data: data[:-4] if name.endswith("data/2") else data,
    )

    with pytest.raises(CheckpointError) as error:
        read_torch_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    assert "'sample_checkpoint/data/2' holds 164 bytes" in message


def test_missing_zip_storage_record(tmp_path):
    path = rewrite_zip(
        SAMPLE,
        tmp_path / "missing.pth",
        lambda name, data: None if name.endswith("data/3") else data,
    )

    with pytest.raises(CheckpointError) as error:
        read_torch_checkpoint(path)
    assert str(error.value) == (
        f"{path}: missing storage record 'sample_checkpoint/data/3'"
    )


def test_unknown_byteorder_record(tmp_path):
    path = rewrite_zip(
        SAMPLE,
        tmp_path / "pdp.pth",
        lambda name, data: b"middle" if name.endswith("byteorder") else data,
    )

    with pytest.raises(CheckpointError, match="unknown byteorder"):
        read_torch_checkpoint(path)


def test_torchscript_archive(tmp_path):
    path = rewrite_zip(
        SAMPLE,
        tmp_path / "scripted.pt",
        lambda name, data: data,
    )
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("sample_checkpoint/constants.pkl", b"")

    with pytest.raises(CheckpointError, match="TorchScript"):
        read_torch_checkpoint(path)


def test_zip_without_data_pkl(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")

    with pytest.raises(CheckpointError, match="data.pkl"):
        read_torch_checkpoint(path)


# read_torch_checkpoint's view of the state dict.


def test_state_dict_entry_that_is_not_a_tensor(tmp_path):
    pickled = pickle.dumps({"state_dict": {"a.weight": 1.5}}, protocol=2)
    path = write_zip(tmp_path / "odd.pth", pickled, {})

    with pytest.raises(CheckpointError) as error:
        read_torch_checkpoint(path)
    assert str(error.value) == (
        f"{path}: entry 'a.weight' of its 'state_dict' entry is a float, "
        "not a tensor"
    )


def test_unwrapped_checkpoint_with_other_entries(tmp_path):
    pickled = pickle.dumps({"model": {}, "epoch": 3}, protocol=2)
    path = write_zip(tmp_path / "wrapped.pth", pickled, {})

    with pytest.raises(CheckpointError, match="entry 'model'.*no 'state_dict'"):
        read_torch_checkpoint(path)


def test_checkpoint_that_is_not_a_dict(tmp_path):
    path = write_zip(tmp_path / "list.pth", pickle.dumps([1, 2]), {})

    with pytest.raises(CheckpointError, match="is a list, not a state dict"):
        read_torch_checkpoint(path)
    assert load_torch_checkpoint(path) == [1, 2]


def test_keys_that_collide_once_the_prefix_is_stripped(tmp_path):
    storage = Storage("torch.FloatStorage", "0", 1)
    obj = collections.OrderedDict(
        [
            ("module.w", tensor(storage, 0, (1,), (1,))),
            ("w", tensor(storage, 0, (1,), (1,))),
        ]
    )
    path = write_zip(tmp_path / "twice.pth", torch_pickle(obj), {"0": b"0000"})

    with pytest.raises(CheckpointError, match="two entries named 'w'"):
        read_torch_checkpoint(path)


def test_only_a_leading_module_prefix_is_stripped(tmp_path):
    storage = Storage("torch.FloatStorage", "0", 1)
    obj = collections.OrderedDict(
        [
            ("module.module.w", tensor(storage, 0, (1,), (1,))),
            ("head.module.b", tensor(storage, 0, (1,), (1,))),
        ]
    )
    path = write_zip(tmp_path / "names.pth", torch_pickle(obj), {"0": b"0000"})

    assert list(read_torch_checkpoint(path)) == ["module.w", "head.module.b"]
