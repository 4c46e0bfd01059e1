"""Fuzzing the two serving signatures of an exported SavedModel (issue 16).

Requests of any dtype, rank and size, and files of any bytes, go to the
loaded signatures the way the model server feeds them (typed tensors).
Each request is classified first by the contract of docs/serving.md: a
valid request must return well-formed outputs, a bad one must fail with
`INVALID_ARGUMENT` (`tf.errors.InvalidArgumentError` in process) and the
message documented for one of its defects, and after it a valid request
must still return exactly what it returned before. Nothing else may be
raised. Both the plain and the frozen (`freeze=True`) export are fuzzed,
with 1,000 requests each.
"""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import event
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from gff_keras import GFFNet
from gff_keras.export import export_saved_model

NUM_CLASSES = 4
PIXELS = "serving_default"
FILES = "serving_image_bytes"
VARIANTS = ("plain", "frozen")
MAX_SIDE = 24  # pixels
MAX_BATCH = 3
REQUESTS_PER_SIGNATURE = 500  # two signatures: 1,000 requests per export
FUZZ_SETTINGS = settings(
    max_examples=REQUESTS_PER_SIGNATURE,
    deadline=None,  # a request's time depends on the CPU, not on the code
    derandomize=True,  # the same requests on every run and in CI
    database=None,
)
# The magic numbers of the two documented file formats.
JPEG_HEADER = b"\xff\xd8\xff"
PNG_HEADER = b"\x89PNG\r\n\x1a\n"
DTYPES = (
    tf.uint8,
    tf.int8,
    tf.uint16,
    tf.int32,
    tf.int64,
    tf.float16,
    tf.float32,
    tf.float64,
    tf.bool,
    tf.string,
)

# The messages of docs/serving.md ("Bad input") by defect, as regular
# expressions; `{...}` is filled in per request.
MESSAGES = {
    # Rejected by the signature call, before the graph runs.
    "wrong dtype": r"expected to be a {dtype} tensor but is a \w+ tensor",
    "wrong image shape": (
        r"inputs must be uint8 RGB images \[batch, height, width, 3\] of "
        r"at least 1 x 1 pixels; received shape\] \[{shape}\]"
    ),
    "no image": (
        r"inputs: the request holds no image.*received shape\] \[{shape}\]"
    ),
    "not a vector": (
        r"image_bytes must be a string vector \[batch\] of encoded JPEG or "
        r"PNG files.*received shape\] \[{shape}\]"
    ),
    "no file": r"image_bytes: the request holds no image",
    "not JPEG or PNG": (
        r"image_bytes: every element must be an encoded JPEG or PNG file; "
        r"one starts with the bytes\] \[{header}\]"
    ),
    # The decoders' own words.
    "undecodable": r"Invalid PNG|Invalid JPEG data",
    "mixed sizes": (
        r"image_bytes: all images of one request must have the same height "
        r"and width"
    ),
}


class Served:
    """A loaded export, and a known-good request for each signature."""

    def __init__(self, path):
        self.path = path
        # The signatures only weakly reference the loaded object.
        self.loaded = tf.saved_model.load(path)
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
        self.good_requests = {
            PIXELS: tf.constant(image[None]),
            FILES: tf.constant([tf.io.encode_png(image).numpy()]),
        }
        self.good_outputs = self.call(PIXELS, self.good_requests[PIXELS])

    def call(self, signature_name, request):
        """Feeds `request` to the signature's one input, as a server does."""
        signature = self.loaded.signatures[signature_name]
        (input_name,) = signature.structured_input_signature[1]
        return signature(**{input_name: request})

    def assert_still_serves(self, signature_name):
        """The signature answers its known-good request as at first."""
        good_request = self.good_requests[signature_name]
        outputs = self.call(signature_name, good_request)
        # PNG is lossless: the file's outputs are the pixels' outputs.
        for key in ("predictions", "confidence"):
            np.testing.assert_array_equal(outputs[key], self.good_outputs[key])


def two_level_encoder():
    """Features at strides 2 and 4, as a `FeaturePyramidBackbone` wants."""
    images = keras.Input((None, None, 3))
    fine = keras.layers.Conv2D(4, 3, strides=2, padding="same")(images)
    coarse = keras.layers.Conv2D(8, 3, strides=2, padding="same")(fine)
    return keras.Model(images, {"fine": fine, "coarse": coarse})


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """`{"plain": Served, "frozen": Served}`, exported once per module."""
    keras.utils.set_random_seed(0)  # module fixtures run before the seed one
    # The default GFF head, dense pyramid and PPM on a two-convolution
    # encoder: the signatures' checks and decoding are what is fuzzed, and
    # a request costs 1 ms here against 12 ms with tests/test_export.py's
    # ResNet-18 model (measured on 2 cores).
    model = GFFNet(
        NUM_CLASSES,
        backbone=two_level_encoder(),
        fused_channels=8,
        context_channels=8,
    )
    return {
        variant: Served(
            export_saved_model(
                model,
                str(tmp_path_factory.mktemp(variant)),
                freeze=variant == "frozen",
            )
        )
        for variant in VARIANTS
    }


# === Requests ===


def random_array(shape, dtype, seed):
    """An array of `shape` and `dtype` with arbitrary contents."""
    rng = np.random.default_rng(seed)
    if dtype == tf.string:
        flat = np.empty(int(np.prod(shape)), dtype=object)
        for index in range(flat.size):
            flat[index] = rng.bytes(int(rng.integers(0, 4)))
        return flat.reshape(shape)
    values = rng.integers(0, 256, shape)
    return values.astype(dtype.as_numpy_dtype)


def tensor_of(shape, dtype, seed):
    """A request as a model server receives it: a typed tensor."""
    return tf.constant(random_array(shape, dtype, seed), dtype=dtype)


sides = st.integers(0, MAX_SIDE)
image_sides = st.integers(1, MAX_SIDE)
seeds = st.integers(0, 2**32 - 1)


@st.composite
def valid_pixel_requests(draw):
    batch = draw(st.integers(1, MAX_BATCH))
    height, width = draw(image_sides), draw(image_sides)
    return tensor_of([batch, height, width, 3], tf.uint8, draw(seeds))


@st.composite
def any_pixel_requests(draw):
    # About half uint8 and half rank 4, where the shape checks work.
    dtype = draw(st.just(tf.uint8) | st.sampled_from(DTYPES))
    rank = draw(st.just(4) | st.integers(0, 5))
    if rank == 4:
        shape = [
            draw(st.integers(0, MAX_BATCH)),
            draw(sides),
            draw(sides),
            draw(st.just(3) | st.integers(0, 5)),  # channels
        ]
    else:
        dims = st.integers(0, 4)
        shape = draw(st.lists(dims, min_size=rank, max_size=rank))
    return tensor_of(shape, dtype, draw(seeds))


@st.composite
def encoded_images(draw, height=None, width=None):
    """A decodable JPEG or PNG file: gray, RGB or (PNG only) RGBA."""
    height = height or draw(image_sides)
    width = width or draw(image_sides)
    is_png = draw(st.booleans())
    channels = draw(st.sampled_from([1, 3, 4] if is_png else [1, 3]))
    image = random_array([height, width, channels], tf.uint8, draw(seeds))
    if is_png:
        return tf.io.encode_png(image).numpy()
    quality = draw(st.integers(1, 100))
    return tf.io.encode_jpeg(image, quality=quality).numpy()


@st.composite
def truncated_images(draw):
    data = draw(encoded_images())
    return data[: draw(st.integers(0, len(data) - 1))]


@st.composite
def corrupted_images(draw):
    data = bytearray(draw(encoded_images()))
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


files = st.one_of(
    encoded_images(),
    truncated_images(),
    corrupted_images(),
    st.binary(max_size=64),
    # Past the header check, into the decoders.
    st.sampled_from([JPEG_HEADER, PNG_HEADER]).flatmap(
        lambda header: st.binary(max_size=64).map(header.__add__)
    ),
    # Formats the decoder knows but the contract excludes.
    st.sampled_from([b"GIF89a", b"BM"]).flatmap(
        lambda header: st.binary(max_size=32).map(header.__add__)
    ),
)


def string_tensor(shape, elements):
    """A string tensor of `shape`, its elements `elements` over and over."""
    flat = np.empty(int(np.prod(shape)), dtype=object)
    for index in range(flat.size):
        flat[index] = elements[index % len(elements)]
    return tf.constant(flat.reshape(shape), dtype=tf.string)


@st.composite
def same_size_files(draw):
    height, width = draw(image_sides), draw(image_sides)
    count = draw(st.integers(1, MAX_BATCH))
    batch = [draw(encoded_images(height, width)) for _ in range(count)]
    return string_tensor([count], batch)


@st.composite
def mixed_size_files(draw):
    batch = draw(st.lists(encoded_images(), min_size=2, max_size=MAX_BATCH))
    return string_tensor([len(batch)], batch)


@st.composite
def any_file_batches(draw):
    """A vector of files of any kind: the per-file checks and decoding."""
    batch = draw(st.lists(files, min_size=1, max_size=MAX_BATCH))
    return string_tensor([len(batch)], batch)


@st.composite
def any_file_requests(draw):
    """Any dtype and rank: the dtype, rank and file count checks."""
    rank = draw(st.integers(0, 5))
    # Only vectors are decoded: other ranks stay small.
    dims = st.integers(0, MAX_BATCH if rank == 1 else 2)
    shape = draw(st.lists(dims, min_size=rank, max_size=rank))
    if draw(st.integers(0, 9)) == 0:
        return tensor_of(shape, draw(st.sampled_from(DTYPES[:-1])), 0)
    return string_tensor(shape, draw(st.lists(files, min_size=1, max_size=3)))


# === Contract ===


def printed(values):
    """Numbers as the assertion messages print them: `1 9 9 4`."""
    return " ".join(str(value) for value in values)


def defect(name, **values):
    """`(name, message)`: the message of `MESSAGES[name]`, filled in."""
    return name, MESSAGES[name].format(**values)


def pixel_defects(tensor):
    """The defects of `inputs=tensor`, as `defect`s; none if it is valid."""
    if tensor.dtype != tf.uint8:
        return [defect("wrong dtype", dtype="uint8")]
    dims = tensor.shape.as_list()
    if len(dims) != 4 or dims[3] != 3 or 0 in dims[1:3]:
        return [defect("wrong image shape", shape=printed(dims))]
    if dims[0] == 0:
        return [defect("no image", shape=printed(dims))]
    return []


def file_defects_and_images(tensor):
    """The defects of `image_bytes=tensor`, or none and its RGB images.

    The files of a batch are decoded in parallel, so a request with several
    defects may fail with the message of any of them.
    """
    if tensor.dtype != tf.string:
        return [defect("wrong dtype", dtype="string")], None
    if tensor.shape.rank != 1:
        return [defect("not a vector", shape=printed(tensor.shape))], None
    if tensor.shape[0] == 0:
        return [defect("no file")], None
    defects, images = [], []
    for data in tensor.numpy():
        if not data.startswith((JPEG_HEADER, PNG_HEADER)):
            # The message shows as many bytes as the longer header has.
            header = printed(data[: len(PNG_HEADER)])
            defects.append(defect("not JPEG or PNG", header=header))
            continue
        try:
            images.append(
                tf.io.decode_image(
                    data, channels=3, dtype=tf.uint8, expand_animations=False
                ).numpy()
            )
        except tf.errors.InvalidArgumentError:
            defects.append(defect("undecodable"))
    if len({image.shape for image in images}) > 1:
        defects.append(defect("mixed sizes"))
    return defects, None if defects else np.stack(images)


def describe(tensor):
    """`uint8 [1, 9, 9, 4]`: a request in a failure message."""
    return f"{tensor.dtype.name} {tensor.shape.as_list()}"


def assert_outputs(outputs, images):
    """Well-formed outputs for the uint8 `images` `[batch, h, w, 3]`."""
    predictions = outputs["predictions"]
    confidence = outputs["confidence"]
    assert predictions.dtype == tf.int32
    assert confidence.dtype == tf.float32
    assert predictions.shape == images.shape[:3]
    assert confidence.shape == images.shape[:3]
    assert np.all((predictions >= 0) & (predictions < NUM_CLASSES))
    # The largest of NUM_CLASSES probabilities is at least their mean.
    assert np.all(confidence >= 1 / NUM_CLASSES - 1e-6)
    assert np.all(confidence <= 1)


def assert_rejected(served, signature_name, request, defects):
    """The request fails with one of `defects`; a good one then works."""
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        served.call(signature_name, request)
    message = raised.value.message
    assert any(re.search(pattern, message) for _, pattern in defects), (
        f"{describe(request)} failed with\n{message}\nnot with the message "
        f"of one of its defects: {defects}"
    )
    # Shows in `pytest --hypothesis-show-statistics`.
    event("rejected: " + ", ".join(sorted({name for name, _ in defects})))
    served.assert_still_serves(signature_name)


# === Tests ===


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@FUZZ_SETTINGS
@example(tf.zeros([0, 8, 8, 3], tf.uint8))  # issue 16: a batch of none
@example(tf.zeros([8, 8, 3], tf.uint8))  # one image without its batch
@given(st.one_of(valid_pixel_requests(), any_pixel_requests()))
def test_pixel_requests_are_served_or_rejected_clearly(
    exports, variant, inputs
):
    served = exports[variant]
    defects = pixel_defects(inputs)
    if defects:
        assert_rejected(served, PIXELS, inputs, defects)
    else:
        assert_outputs(served.call(PIXELS, inputs), inputs.numpy())
        event("served")


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@FUZZ_SETTINGS
# Issue 16: one file not in a batch, and a batch of none.
@example(tf.constant(tf.io.encode_png(tf.zeros([4, 4, 3], tf.uint8))))
@example(tf.constant([], tf.string))
@given(
    st.one_of(
        same_size_files(),
        mixed_size_files(),
        any_file_batches(),
        any_file_requests(),
    )
)
def test_file_requests_are_served_or_rejected_clearly(
    exports, variant, image_bytes
):
    served = exports[variant]
    defects, images = file_defects_and_images(image_bytes)
    if defects:
        assert_rejected(served, FILES, image_bytes, defects)
        return
    outputs = served.call(FILES, image_bytes)
    assert_outputs(outputs, images)
    # Decoding in the graph gives the pixels a client would have sent.
    from_pixels = served.call(PIXELS, tf.constant(images))
    for key in ("predictions", "confidence"):
        np.testing.assert_array_equal(outputs[key], from_pixels[key])
    event("served")


@pytest.mark.parametrize("variant", VARIANTS)
def test_predictor_calls_a_frozen_export_with_the_frozen_graph_options(
    exports, variant, monkeypatch
):
    # scripts/predict.py's Predictor calls a frozen SavedModel (no
    # variables) without the layout and memory optimizers
    # (`frozen_graph_call_options`), a plain one as it is; both answer as
    # the signature does.
    import contextlib

    from gff_keras.visualization import Predictor
    from gff_keras.visualization import predictor as predictor_module

    entered = []

    @contextlib.contextmanager
    def recorded():
        entered.append(True)
        yield

    monkeypatch.setattr(predictor_module, "frozen_graph_call_options", recorded)
    served = exports[variant]
    image = served.good_requests[PIXELS].numpy()[0]
    mask = Predictor.load(served.path).predict(image)
    assert entered == ([True] if variant == "frozen" else [])
    np.testing.assert_array_equal(mask, served.good_outputs["predictions"][0])
