"""PyTorch checkpoint files written without PyTorch, for the tests.

Pickles that name torch globals (`torch._utils._rebuild_tensor_v2`, storage
types) as `torch.save` writes them, in both file formats.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np


class Global:
    """Pickles as a GLOBAL reference to a dotted name that need not exist."""

    def __init__(self, qualified_name):
        self.module, _, self.name = qualified_name.rpartition(".")

    def __call__(self, *args):  # pickle only reduces to callables
        raise AssertionError("never called")


class Call:
    """Pickles as REDUCE: `func(*args)` when unpickled."""

    def __init__(self, func, *args):
        self.func = func
        self.args = args

    def __reduce__(self):
        return self.func, self.args


class Storage:
    """Pickles as a storage's persistent id."""

    def __init__(self, storage_type, key, numel, *view_metadata):
        self.pid = ("storage", Global(storage_type), key, "cpu", numel)
        self.pid += view_metadata


class TorchPickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def save_global_reference(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[Global] = save_global_reference

    def persistent_id(self, obj):
        # Storage objects, and any other object given a `pid` to write.
        return getattr(obj, "pid", None)


def torch_pickle(obj):
    stream = io.BytesIO()
    TorchPickler(stream, protocol=2).dump(obj)
    return stream.getvalue()


def tensor(storage, offset, size, stride):
    return Call(
        Global("torch._utils._rebuild_tensor_v2"),
        storage,
        offset,
        tuple(size),
        tuple(stride),
        False,
        collections.OrderedDict(),
    )


def write_zip(path, pickled, records, archive="archive", byteorder=b"little"):
    """Writes a zip checkpoint: `pickled` and {key: bytes} storage records."""
    with zipfile.ZipFile(path, "w") as out:
        out.writestr(f"{archive}/data.pkl", pickled)
        if byteorder is not None:
            out.writestr(f"{archive}/byteorder", byteorder)
        for key, data in records.items():
            out.writestr(f"{archive}/data/{key}", data)
        out.writestr(f"{archive}/version", b"3\n")
    return path


def write_legacy(path, pickled, records):
    """Writes a legacy checkpoint; records are {key: (numel, bytes)}."""
    sys_info = {"protocol_version": 1001, "little_endian": True}
    with open(path, "wb") as out:
        out.write(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))
        out.write(pickle.dumps(1001, protocol=2))
        out.write(pickle.dumps(sys_info, protocol=2))
        out.write(pickled)
        out.write(pickle.dumps(list(records), protocol=2))
        for numel, data in records.values():
            out.write(struct.pack("<q", numel) + data)
    return path


# torch's storage type for each numpy dtype this writer needs.
STORAGE_TYPES = {
    np.dtype("float32"): "torch.FloatStorage",
    np.dtype("int64"): "torch.LongStorage",
}


def write_state_dict(path, state_dict, **entries):
    """Writes `{"state_dict": OrderedDict(...), **entries}` as `torch.save`
    does (zip format, one storage per array)."""
    records = {}
    tensors = collections.OrderedDict()
    for index, (key, array) in enumerate(state_dict.items()):
        array = np.ascontiguousarray(array)
        storage = Storage(STORAGE_TYPES[array.dtype], str(index), array.size)
        strides = tuple(s // array.itemsize for s in array.strides)
        tensors[key] = tensor(storage, 0, array.shape, strides)
        records[str(index)] = array.astype(array.dtype.newbyteorder("<"))
        records[str(index)] = records[str(index)].tobytes()
    return write_zip(
        path, torch_pickle({"state_dict": tensors, **entries}), records
    )
