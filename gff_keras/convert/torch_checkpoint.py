"""Reads PyTorch `.pth` checkpoints into numpy arrays, without PyTorch.

PyTorch writes checkpoints in one of two formats, and both are read here:

* The zip format (torch >= 1.6): a zip archive whose entries all sit under
  one folder, `<archive>/`. `<archive>/data.pkl` is the pickle of the saved
  object; each tensor storage it refers to is the raw bytes of the record
  `<archive>/data/<key>`. `<archive>/byteorder` ("little" or "big") says how
  those bytes are ordered; files without it are little-endian.
* The legacy format (torch < 1.6, or `_use_new_zipfile_serialization=False`):
  one stream of pickles: a magic number, a protocol version (1001), a dict of
  system information, the saved object, then the list of storage keys, then
  each storage in that order as an 8-byte little-endian element count
  followed by its raw, always little-endian, bytes.

In both, the object pickle names each storage by a persistent id,
`("storage", storage_type, key, location, numel)` (the legacy format adds a
sixth field, `view_metadata`), and rebuilds each tensor with
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`: a
strided view of the storage, so several tensors may share one storage.
Here each tensor becomes a numpy array copied out of its storage, so no two
returned arrays share memory.

The pickle is read by an unpickler that allows only the globals a tensor
checkpoint holds (the spirit of `torch.load(weights_only=True)`), each mapped
to a function of this module: PyTorch is never imported and no global from
the file is ever looked up. Anything else, `os.system` for one, is refused
before it can run. One deliberate difference from `weights_only=True`:
numeric numpy scalars are read (training scripts often store `mean_iu` as a
`numpy.float64`), rebuilt here from their bytes; numpy arrays and object
dtypes are still refused.
"""

import collections
import io
import os
import pickle
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

# The first pickle of a legacy checkpoint, and the protocol version after it.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_LEGACY_MAGIC_PICKLE = pickle.dumps(_LEGACY_MAGIC, protocol=2)

_REFUSAL_HINT = (
    "a tensor checkpoint holds only tensors, dicts and numbers; this file "
    "is not one (or was saved with arbitrary objects)."
)


class CheckpointError(ValueError):
    """A file is not a PyTorch checkpoint this module can read.

    The message starts with the file's path.
    """


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint's pickle asks for a global a tensor checkpoint never holds.

    Unpickling stops at that global: nothing from the file has run.
    """


class _Problem(Exception):
    """A problem found while decoding; the caller adds the file's path."""


class _Refused(_Problem):
    """A global outside the allow-list."""


class _DType:
    """A torch dtype: how its elements lie on disk and what they become.

    Attributes:
        name: The torch name, e.g. "float32".
        disk: The numpy dtype of the bytes on disk, little-endian; None when
            the dtype is known but not supported here.
    """

    __slots__ = ("name", "disk")

    def __init__(self, name: str, disk: str | None):
        self.name = name
        self.disk = None if disk is None else np.dtype(disk)

    def require_supported(self) -> None:
        if self.disk is None:
            raise _Problem(f"unsupported dtype torch.{self.name}")

    def decode(self, elements: np.ndarray) -> np.ndarray:
        """Returns a native-order, C-contiguous copy of `elements`."""
        if self.name == "bfloat16":
            # bfloat16 is the top half of a float32, so widening is exact and
            # needs no optional dependency such as ml_dtypes.
            bits = np.array(elements, dtype=np.uint32, order="C")
            return (bits << 16).view(np.float32)
        if self.name == "bool":
            # Any nonzero byte is true; numpy would keep the raw byte.
            return np.array(elements != 0, order="C")
        native = elements.dtype.newbyteorder("=")
        return np.array(elements, dtype=native, order="C", copy=True)


def _dtype_table() -> dict[str, _DType]:
    """Returns the torch dtypes by name, supported or not."""
    supported = [
        _DType("float64", "<f8"),
        _DType("float32", "<f4"),
        _DType("float16", "<f2"),
        _DType("bfloat16", "<u2"),
        _DType("complex128", "<c16"),
        _DType("complex64", "<c8"),
        _DType("int64", "<i8"),
        _DType("int32", "<i4"),
        _DType("int16", "<i2"),
        _DType("int8", "i1"),
        _DType("uint64", "<u8"),
        _DType("uint32", "<u4"),
        _DType("uint16", "<u2"),
        _DType("uint8", "u1"),
        _DType("bool", "u1"),
    ]
    # Known to PyTorch, so not refused as unsafe, but not decoded here.
    unsupported = [
        "complex32",
        "float8_e5m2",
        "float8_e4m3fn",
        "float8_e5m2fnuz",
        "float8_e4m3fnuz",
        "float8_e8m0fnu",
        "float4_e2m1fn_x2",
        "qint8",
        "qint32",
        "quint8",
        "quint4x2",
        "quint2x4",
        "bits8",
        "bits16",
        "bits1x8",
        "bits2x4",
        "bits4x2",
        *[f"uint{bits}" for bits in range(1, 8)],
        *[f"int{bits}" for bits in range(1, 8)],
    ]
    table = {dtype.name: dtype for dtype in supported}
    table.update((name, _DType(name, None)) for name in unsupported)
    return table


_DTYPES = _dtype_table()

_STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "QInt8Storage": "qint8",
    "QInt32Storage": "qint32",
    "QUInt8Storage": "quint8",
    "QUInt4x2Storage": "quint4x2",
    "QUInt2x4Storage": "quint2x4",
    # Storages of the newer dtypes are saved untyped, as bytes, and the
    # tensor names its dtype (_rebuild_tensor_v3).
    "UntypedStorage": "uint8",
}


class _Marker:
    """Stands in for a torch class or dtype that the pickle names.

    Attributes:
        name: The qualified name, e.g. "torch.FloatStorage".
        dtype: The storage's or dtype's `_DType`; None for tensor classes.
    """

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: _DType | None = None):
        self.name = name
        self.dtype = dtype

    def __setstate__(self, state):
        raise _Problem(f"the pickle sets state on {self.name}")

    def __repr__(self):
        return self.name


class _Storage:
    """A storage named by a persistent id, or a legacy view of one.

    Attributes:
        key: The storage's key, its record name in the zip format.
        dtype: The dtype of the storage's elements.
        numel: The number of elements.
        root: The storage whose bytes this one reads (itself, unless a legacy
            storage view).
        byte_offset: Where this storage starts in its root's bytes.
        data: The root's bytes, once read.
        byteorder: "<" or ">", how those bytes are ordered.
    """

    __slots__ = (
        "key",
        "dtype",
        "numel",
        "root",
        "byte_offset",
        "data",
        "byteorder",
    )
    # Unhashable, so a storage or tensor in a set or as a dict key fails to
    # unpickle instead of coming back unconverted.
    __hash__ = None

    def __init__(self, key, dtype, numel, root=None, byte_offset=0):
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.root = self if root is None else root
        self.byte_offset = byte_offset
        self.data = None
        self.byteorder = "<"

    def __setstate__(self, state):
        raise _Problem(f"the pickle sets state on storage {self.key!r}")

    def nbytes(self) -> int:
        return self.numel * self.dtype.disk.itemsize

    def elements(self, dtype: _DType) -> np.ndarray:
        """Returns this storage's bytes viewed as `dtype`, read-only."""
        data = self.root.data
        if data is None:
            raise _Problem(f"storage {self.root.key!r} was never written")
        start = self.byte_offset
        stop = start + self.nbytes()
        disk = dtype.disk.newbyteorder(self.root.byteorder)
        count = (stop - start) // disk.itemsize
        return np.frombuffer(data, dtype=disk, count=count, offset=start)


class _Tensor:
    """A tensor to rebuild: a strided view of a storage."""

    __slots__ = ("storage", "dtype", "offset", "size", "stride")
    __hash__ = None

    def __init__(self, storage, offset, size, stride, dtype=None):
        if not isinstance(storage, _Storage):
            raise _Problem(f"a tensor's storage is a {type(storage).__name__}")
        if dtype is None:
            dtype = storage.dtype
        if not isinstance(dtype, _DType):
            raise _Problem(f"a tensor's dtype is a {type(dtype).__name__}")
        dtype.require_supported()
        self.storage = storage
        self.dtype = dtype
        self.offset = _index(offset, "storage offset")
        self.size = _indices(size, "size")
        self.stride = _indices(stride, "stride")
        if len(self.size) != len(self.stride):
            raise _Problem(
                f"a tensor has size {self.size} but stride {self.stride}"
            )

    def __setstate__(self, state):
        raise _Problem("the pickle sets state on a tensor")

    def to_numpy(self) -> np.ndarray:
        """Returns the tensor's values, copied out of its storage."""
        elements = self.storage.elements(self.dtype)
        if 0 in self.size:
            return self.dtype.decode(elements[:0]).reshape(self.size)
        last = self.offset + sum(
            (n - 1) * step for n, step in zip(self.size, self.stride)
        )
        if last >= len(elements):
            raise _Problem(
                f"size {self.size}, stride {self.stride} and offset "
                f"{self.offset} reach element {last} of a storage of "
                f"{len(elements)} {self.dtype.name} elements"
            )
        itemsize = elements.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            elements[self.offset :],
            shape=self.size,
            strides=[step * itemsize for step in self.stride],
            writeable=False,
        )
        return self.dtype.decode(view)


def _index(value, what: str) -> int:
    # bool is an int subclass, but never a valid index here.
    if type(value) is not int or value < 0:
        raise _Problem(f"a tensor's {what} is {value!r}")
    return value


def _indices(values, what: str) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list)):
        raise _Problem(f"a tensor's {what} is {values!r}")
    return tuple(_index(value, what) for value in values)


class _NumpyDType:
    """A numeric numpy dtype named by a pickled numpy scalar."""

    __slots__ = ("dtype",)

    def __init__(self, spec, align=False, copy=False):
        try:
            dtype = np.dtype(spec) if isinstance(spec, str) else None
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in "biufc":
            raise _Refused(
                f"refusing to unpickle the numpy dtype {spec!r}: only "
                "numeric numpy scalars are read"
            )
        self.dtype = dtype

    def __setstate__(self, state):
        # numpy pickles (version, byteorder, ...); only the byte order
        # matters for a plain numeric dtype.
        if not isinstance(state, tuple) or len(state) < 2:
            raise _Problem(f"bad numpy dtype state {state!r}")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


# The functions the allowed globals map to. Each checks its arguments: they
# come from the file.


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(
    storage,
    storage_offset,
    size,
    stride,
    requires_grad=False,
    backward_hooks=None,
    metadata=None,
):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(
    storage,
    storage_offset,
    size,
    stride,
    requires_grad,
    backward_hooks,
    dtype,
    metadata=None,
):
    if not isinstance(dtype, _Marker) or dtype.dtype is None:
        raise _Problem(f"a tensor's dtype is {dtype!r}")
    return _Tensor(storage, storage_offset, size, stride, dtype.dtype)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, _Tensor):
        raise _Problem(f"a parameter holds a {type(data).__name__}")
    return data


_TENSOR_FUNCTIONS = (
    _rebuild_tensor,
    _rebuild_tensor_v2,
    _rebuild_tensor_v3,
    _rebuild_parameter,
)
_TENSOR_CLASS = _Marker("torch.Tensor")
_PARAMETER_CLASS = _Marker("torch.nn.parameter.Parameter")


def _rebuild_from_type_v2(func, new_type, args, state):
    # Tensors with Python attributes, and Parameters, are pickled this way;
    # the attributes (`state`) are dropped.
    known = any(func is function for function in _TENSOR_FUNCTIONS)
    if not known or not isinstance(args, tuple):
        raise _Problem(f"a tensor is rebuilt with {func!r}")
    if new_type is not _TENSOR_CLASS and new_type is not _PARAMETER_CLASS:
        raise _Problem(f"a tensor is rebuilt as a {new_type!r}")
    return func(*args)


def _torch_size(dims=()):
    return _indices(dims, "size")


def _torch_device(kind, index=None):
    if not isinstance(kind, str) or not (index is None or type(index) is int):
        raise _Problem(f"bad torch.device({kind!r}, {index!r})")
    return kind if index is None else f"{kind}:{index}"


def _codecs_encode(text, encoding="utf-8"):
    # Protocol 2 pickles bytes as _codecs.encode(latin-1 text, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused(f"refusing _codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


def _numpy_scalar(dtype, data=None):
    if isinstance(data, str):  # a Python 2 pickle's byte string
        data = data.encode("latin1")
    if not isinstance(dtype, _NumpyDType) or not isinstance(data, bytes):
        raise _Problem("bad numpy scalar")
    if len(data) != dtype.dtype.itemsize:
        raise _Problem(f"a numpy {dtype.dtype} scalar of {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype.dtype)[0]


def _unsupported(name: str):
    def refuse(*args):
        raise _Problem(
            f"{name} rebuilds a sparse, quantized, nested or other special "
            "tensor; only dense tensors are supported"
        )

    return refuse


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Returns what each allowed (module, name) global unpickles as."""
    allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "Counter"): collections.Counter,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        # Where _rebuild_from_type_v2 lived before torch 1.9.
        ("torch.tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Tensor"): _TENSOR_CLASS,
        ("torch.nn.parameter", "Parameter"): _PARAMETER_CLASS,
        ("torch", "Size"): _torch_size,
        ("torch", "device"): _torch_device,
        ("_codecs", "encode"): _codecs_encode,
        ("numpy.core.multiarray", "scalar"): _numpy_scalar,
        ("numpy._core.multiarray", "scalar"): _numpy_scalar,
        ("numpy", "dtype"): _NumpyDType,
    }
    for module in ("builtins", "__builtin__"):  # Python 3 and 2 pickles
        for type_ in (set, frozenset, bytearray, complex):
            allowed[module, type_.__name__] = type_
    for name in [
        "_rebuild_sparse_tensor",
        "_rebuild_nested_tensor",
        "_rebuild_qtensor",
        "_rebuild_device_tensor_from_numpy",
        "_rebuild_device_tensor_from_cpu_tensor",
        "_rebuild_meta_tensor_no_storage",
        "_rebuild_wrapper_subclass",
    ]:
        allowed["torch._utils", name] = _unsupported(f"torch._utils.{name}")
    allowed["torch.serialization", "_get_layout"] = _unsupported(
        "torch.serialization._get_layout"
    )
    for name, dtype in _DTYPES.items():
        allowed["torch", name] = _Marker(f"torch.{name}", dtype)
    for name, dtype_name in _STORAGE_DTYPES.items():
        marker = _Marker(f"torch.{name}", _DTYPES[dtype_name])
        for module in ("torch", "torch.cuda", "torch.storage"):
            allowed[module, name] = marker
    return allowed


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in `_ALLOWED`.

    find_class is the only way a pickle reaches a callable (GLOBAL,
    STACK_GLOBAL, INST, OBJ and the EXT opcodes all go through it), so
    refusing there also refuses every REDUCE, NEWOBJ and BUILD of anything
    outside the allow-list.
    """

    def __init__(self, file, persistent_load=None):
        # latin1 reads Python 2 byte strings as text without failing.
        super().__init__(file, encoding="latin1")
        self._load_storage = persistent_load

    def find_class(self, module, name):
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise _Refused(
                f"refusing to unpickle '{module}.{name}': {_REFUSAL_HINT}"
            )
        return allowed

    def persistent_load(self, pid):
        if self._load_storage is None:
            raise _Problem("a persistent id outside the object pickle")
        return self._load_storage(pid)


def _unpickle(stream: io.BytesIO, load_storage=None):
    """Reads one pickle from `stream` with the restricted unpickler."""
    try:
        return _RestrictedUnpickler(stream, load_storage).load()
    except _Problem:
        raise
    except RecursionError:
        raise _Problem("a pickle nested too deeply") from None
    except Exception as err:  # a malformed pickle can raise almost anything
        raise _Problem(
            f"corrupt or truncated pickle ({type(err).__name__}: {err})"
        ) from None


def _parse_storage_id(pid, allow_view: bool):
    """Splits a storage's persistent id into its fields.

    Returns:
        (dtype, key, numel, view): `view` is the legacy
        (view_key, offset, numel) or None.
    """
    if not isinstance(pid, tuple) or not pid:
        raise _Problem(f"bad persistent id {pid!r}")
    typename = pid[0]
    if isinstance(typename, bytes):
        typename = typename.decode("ascii", "replace")
    if typename != "storage":
        # The legacy format saved whole modules' source this way.
        raise _Refused(
            f"refusing persistent id {typename!r} (a pickled module or other "
            f"object, not a storage): {_REFUSAL_HINT}"
        )
    if len(pid) not in ((5, 6) if allow_view else (5,)):
        raise _Problem(f"bad storage persistent id {pid!r}")
    storage_type, key, _, numel = pid[1:5]
    view = pid[5] if len(pid) == 6 else None
    if isinstance(key, bytes):
        key = key.decode("ascii", "replace")
    if not isinstance(storage_type, _Marker) or storage_type.dtype is None:
        raise _Problem(f"storage {key!r} has type {storage_type!r}")
    if not isinstance(key, str) or type(numel) is not int or numel < 0:
        raise _Problem(f"bad storage persistent id {pid!r}")
    if storage_type.dtype.disk is None:
        raise _Problem(
            f"storage {key!r} is a {storage_type.name}: unsupported dtype "
            f"torch.{storage_type.dtype.name}"
        )
    if view is not None:
        if (
            not isinstance(view, tuple)
            or len(view) != 3
            or not isinstance(view[0], str)
            or any(type(n) is not int or n < 0 for n in view[1:])
        ):
            raise _Problem(f"bad storage view {view!r}")
    return storage_type.dtype, key, numel, view


def _materialize(obj, seen: dict, where: str):
    """Replaces every tensor and storage in `obj` by a numpy array.

    Dicts and lists are changed in place, so shared and cyclic containers
    stay so; `seen` maps the id of each container already done to its
    result. A tensor met twice gives two arrays: outputs never alias.
    """
    if isinstance(obj, _Tensor):
        try:
            return obj.to_numpy()
        except _Problem as problem:
            raise _Problem(f"tensor {where or 'at top level'}: {problem}")
    if isinstance(obj, _Storage):
        dtype = obj.dtype
        return dtype.decode(obj.elements(dtype))
    if isinstance(obj, _Marker):
        return obj.name
    if isinstance(obj, _NumpyDType):
        return obj.dtype
    if not isinstance(obj, (dict, list, tuple)):
        return obj
    if id(obj) in seen:
        return seen[id(obj)]
    if isinstance(obj, dict):
        seen[id(obj)] = obj
        for key, value in obj.items():
            obj[key] = _materialize(value, seen, f"{where}[{key!r}]")
        return obj
    if isinstance(obj, list):
        seen[id(obj)] = obj
        for index, value in enumerate(obj):
            obj[index] = _materialize(value, seen, f"{where}[{index}]")
        return obj
    result = tuple(
        _materialize(value, seen, f"{where}[{index}]")
        for index, value in enumerate(obj)
    )
    seen[id(obj)] = result
    return result


def _load_zip(archive: zipfile.ZipFile):
    """Unpickles a zip-format checkpoint; storages are read as met."""
    names = set(archive.namelist())
    pickles = [
        name
        for name in names
        if name.count("/") <= 1
        and (name == "data.pkl" or name.endswith("/data.pkl"))
    ]
    if len(pickles) != 1:
        raise _Problem(
            "a zip archive without exactly one <archive>/data.pkl record: "
            "not a PyTorch checkpoint"
        )
    prefix = pickles[0][: -len("data.pkl")]
    if f"{prefix}constants.pkl" in names or any(
        name.startswith(f"{prefix}code/") for name in names
    ):
        raise _Problem(
            "a TorchScript archive (torch.jit.save), not a checkpoint of "
            "tensors"
        )
    byteorder = "<"
    if f"{prefix}byteorder" in names:
        record = archive.read(f"{prefix}byteorder").strip()
        if record not in (b"little", b"big"):
            raise _Problem(f"unknown byteorder record {record!r}")
        byteorder = "<" if record == b"little" else ">"
    storages = {}

    def load_storage(pid):
        dtype, key, numel, _ = _parse_storage_id(pid, allow_view=False)
        storage = storages.get(key)
        if storage is not None:
            if storage.dtype is not dtype or storage.numel != numel:
                raise _Problem(f"storage {key!r} is named with two types")
            return storage
        storage = _Storage(key, dtype, numel)
        name = f"{prefix}data/{key}"
        try:
            info = archive.getinfo(name)
        except KeyError:
            raise _Problem(f"missing storage record {name!r}") from None
        if info.file_size != storage.nbytes():
            raise _Problem(
                f"storage record {name!r} holds {info.file_size} bytes; "
                f"{numel} {dtype.name} elements need {storage.nbytes()} "
                "(truncated or corrupt)"
            )
        storage.data = archive.read(info)
        storage.byteorder = byteorder
        storages[key] = storage
        return storage

    with archive.open(f"{prefix}data.pkl") as stream:
        pickled = io.BytesIO(stream.read())
    return _unpickle(pickled, load_storage)


def _load_legacy(data: bytes):
    """Unpickles a legacy checkpoint, then reads the storages after it.

    Returns None if `data` does not start with the legacy magic number.
    """
    if len(data) < len(_LEGACY_MAGIC_PICKLE) and (
        _LEGACY_MAGIC_PICKLE.startswith(data)
    ):
        raise _Problem("truncated inside PyTorch's legacy magic number")
    stream = io.BytesIO(data)
    try:
        magic = _unpickle(stream)
    except _Problem:  # not a pickle, or a pickle of something else
        return None
    if type(magic) is not int or magic != _LEGACY_MAGIC:
        return None
    protocol = _unpickle(stream)
    if protocol != _LEGACY_PROTOCOL:
        raise _Problem(f"unsupported legacy protocol version {protocol!r}")
    _unpickle(stream)  # system info: sizes, endianness
    roots = {}

    def load_storage(pid):
        dtype, key, numel, view = _parse_storage_id(pid, allow_view=True)
        root = roots.get(key)
        if root is None:
            root = roots[key] = _Storage(key, dtype, numel)
        elif root.dtype is not dtype or root.numel != numel:
            raise _Problem(f"storage {key!r} is named with two types")
        if view is None:
            return root
        # Before torch 1.0 a storage could be a slice of another.
        view_key, offset, view_numel = view
        if offset + view_numel > numel:
            raise _Problem(f"storage view {view_key!r} overruns {key!r}")
        itemsize = dtype.disk.itemsize
        return _Storage(view_key, dtype, view_numel, root, offset * itemsize)

    obj = _unpickle(stream, load_storage)
    keys = _unpickle(stream)
    if not isinstance(keys, list):
        raise _Problem(f"the storage key list is a {type(keys).__name__}")
    position = stream.tell()
    for key in keys:
        root = roots.get(key)
        if root is None:
            raise _Problem(f"storage {key!r} is written but never used")
        header = data[position : position + 8]
        if len(header) < 8:
            raise _Problem(f"truncated before storage {key!r}")
        (numel,) = struct.unpack("<q", header)
        if numel != root.numel:
            raise _Problem(
                f"storage {key!r} holds {numel} elements; the pickle "
                f"says {root.numel}"
            )
        start = position + 8
        position = start + root.nbytes()
        if position > len(data):
            raise _Problem(
                f"storage {key!r} is truncated: {root.nbytes()} bytes "
                f"needed, {len(data) - start} left"
            )
        root.data = memoryview(data)[start:position]
    missing = [key for key, root in roots.items() if root.data is None]
    if missing:
        raise _Problem(f"storage {missing[0]!r} is used but never written")
    return obj


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """Reads a whole PyTorch checkpoint, tensors as numpy arrays.

    Use this to see everything a checkpoint holds (`epoch`, `mean_iu`,
    optimizer state); `read_torch_checkpoint` gives just the weights.

    Tensors (and Parameters) become C-contiguous numpy arrays that share no
    memory, even where the tensors shared one storage; bfloat16 becomes
    float32 (exactly), bool stays bool. A bare storage becomes a 1-D array.
    Dicts (OrderedDicts stay OrderedDicts), lists, tuples, numbers and
    strings come back as they are; numpy scalars stay numpy scalars;
    `torch.Size` becomes a tuple, a `torch.device` a string like "cuda:0",
    and a torch dtype its name, like "torch.float32". Python attributes set
    on a tensor are dropped.

    Args:
        path: A `.pth` file in PyTorch's zip format (torch >= 1.6) or its
            legacy format.

    Returns:
        The object `torch.save` was given, usually a dict.

    Raises:
        FileNotFoundError: `path` does not exist.
        IsADirectoryError: `path` is a directory.
        UnsafeCheckpointError: The pickle names a global outside the
            allow-list (e.g. `os.system`); nothing from it has run.
        CheckpointError: The file is not a PyTorch checkpoint, is truncated
            or corrupt, lacks a storage, or holds an unsupported dtype or a
            sparse, quantized or TorchScript object. Messages start with
            `path`.
        OSError: The file cannot be read.

    Example:
        >>> checkpoint = load_torch_checkpoint("gff_cityscapes.pth")
        >>> print(checkpoint["epoch"], checkpoint["mean_iu"])
        175 0.8123
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: a directory, not a checkpoint file")
    try:
        obj = _load(path)
        return _materialize(obj, {}, "")
    except _Refused as problem:
        raise UnsafeCheckpointError(f"{path}: {problem}") from None
    except _Problem as problem:
        raise CheckpointError(f"{path}: {problem}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: objects nested too deeply") from None


def _load(path: str):
    with open(path, "rb") as file:
        head = file.read(512)
    if not head:
        raise _Problem("an empty file, not a PyTorch checkpoint")
    # Like PyTorch, tell the formats apart by the zip local-header magic.
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                return _load_zip(archive)
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise _Problem(f"truncated or corrupt zip archive ({err})")
        except NotImplementedError as err:
            raise _Problem(f"unsupported zip archive ({err})")
    if head[257:262] == b"ustar":
        raise _Problem(
            "a tar archive: PyTorch's pre-0.4 tar checkpoint format is not "
            "supported"
        )
    with open(path, "rb") as file:
        data = file.read()
    obj = _load_legacy(data)
    if obj is None:
        raise _Problem(
            "not a PyTorch checkpoint: neither a zip archive (torch >= 1.6) "
            "nor a pickle stream starting with PyTorch's legacy magic number"
        )
    return obj


def read_torch_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads the weights of a PyTorch checkpoint as numpy arrays.

    If the checkpoint is a dict with a "state_dict" entry (as training
    scripts save `{"state_dict": ..., "epoch": ...}`), that entry is the
    state dict; otherwise the checkpoint itself must be one. Other wrappers
    ("model", "model_state") are not looked into. A leading "module." (left
    by `nn.DataParallel`) is stripped from every key that has one.

    Args:
        path: A `.pth` file in PyTorch's zip format (torch >= 1.6) or its
            legacy format.

    Returns:
        The state dict, in its order: parameter and buffer names to
        C-contiguous numpy arrays that share no memory.

    Raises:
        FileNotFoundError: `path` does not exist.
        IsADirectoryError: `path` is a directory.
        UnsafeCheckpointError: The pickle names a global outside the
            allow-list (e.g. `os.system`); nothing from it has run.
        CheckpointError: As for `load_torch_checkpoint`; also when the state
            dict is not a dict, holds something other than tensors (the
            message names the key), or two keys are the same once "module."
            is stripped.
        OSError: The file cannot be read.

    Example:
        >>> weights = read_torch_checkpoint("gff_cityscapes.pth")
        >>> weights["mod1.conv1.weight"].shape
        (64, 3, 3, 3)
    """
    path = os.fspath(path)
    checkpoint = load_torch_checkpoint(path)
    wrapped = isinstance(checkpoint, dict) and "state_dict" in checkpoint
    state_dict = checkpoint["state_dict"] if wrapped else checkpoint
    where = "its 'state_dict' entry" if wrapped else "the checkpoint"
    if not isinstance(state_dict, dict):
        raise CheckpointError(
            f"{path}: {where} is a {type(state_dict).__name__}, not a state "
            "dict"
        )
    weights = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: {where} has a key {key!r}")
        if not isinstance(value, np.ndarray):
            hint = "" if wrapped else " (and it has no 'state_dict' entry)"
            raise CheckpointError(
                f"{path}: entry {key!r} of {where} is a "
                f"{type(value).__name__}, not a tensor{hint}"
            )
        name = key.removeprefix("module.")
        if name in weights:
            raise CheckpointError(
                f"{path}: {where} has two entries named {name!r} once "
                "'module.' is stripped"
            )
        weights[name] = value
    return weights
