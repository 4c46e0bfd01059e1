import os

import keras
import tensorflow as tf

from gff_keras import atomic_files
from gff_keras.data.pipeline import normalize_images
from gff_keras.evaluation.frozen_graph import freeze_function
from gff_keras.evaluation.inference import MODES
from gff_keras.evaluation.inference import PAPER_SCALES
from gff_keras.evaluation.inference import predict_logits

SERVING_DEFAULT = "serving_default"
SERVING_IMAGE_BYTES = "serving_image_bytes"
JPEG_HEADER = b"\xff\xd8\xff"
PNG_HEADER = b"\x89PNG\r\n\x1a\n"


def export_saved_model(
    model: keras.Model,
    export_dir: str,
    *,
    mode: str = "whole",
    crop_size=None,
    stride=None,
    scales=PAPER_SCALES,
    flip: bool = True,
    version: int | None = None,
    freeze: bool = False,
) -> str:
    """Exports a segmentation model as a SavedModel for TensorFlow Serving.

    Writes `export_dir/<version>/`, the layout `tensorflow_model_server
    --model_base_path=export_dir` serves (it picks the highest version).
    The SavedModel holds two signatures; both normalize the images
    (`normalize_images`) and run `predict_logits` in the graph, so clients
    send raw pixels and the SavedModel loads without gff_keras:

    - `serving_default`: input `inputs`, uint8 `[batch, height, width, 3]`
      RGB of any height and width.
    - `serving_image_bytes`: input `image_bytes`, string `[batch]` of
      encoded JPEG or PNG files, decoded to RGB in the graph (grayscale and
      RGBA become RGB). All images of one request must share one height and
      width (they are predicted as one batch); send images of different
      sizes in separate requests.

    Both return `predictions`, int32 `[batch, height, width]` class ids at
    the input's resolution, and `confidence`, float32 `[batch, height,
    width]`, the softmax probability of the predicted class (averaged over
    windows, scales and flips like the prediction itself).

    Bad input fails the request with `INVALID_ARGUMENT` and a message that
    says what was expected. A wrong dtype is rejected by the signature
    itself. `tf.debugging` assertions, checked before any other op reads
    the input, reject a wrong rank or channel count, images of 0 pixels,
    a request of no images (a zero batch, or an empty `image_bytes`: a
    request always holds at least one image), an `image_bytes` that is not
    a vector (a single file goes as a batch of one), bytes that are not
    JPEG or PNG, and differently sized images in one `image_bytes` request.
    A file with a JPEG or PNG header that does not decode (truncated or
    corrupt) fails with the decoder's own message.

    With `freeze=True` the weights are folded into the graph as constants
    (`freeze_function`): the SavedModel has no variables and cannot be
    fine-tuned, but TensorFlow's oneDNN CPU kernels then keep the
    convolution filters in their fast blocked layout, which makes CPU
    serving about 1.2-1.4x faster (`docs/benchmarks.md`). GPU serving does
    not gain. The graph is optimized at export, so a server should call
    it with TensorFlow's graph optimizer off (docs/serving.md;
    `scripts/predict.py` does).

    The version is written under a temporary name and renamed when
    complete (local paths), so a running model server never loads a
    half-written version.

    Args:
        model: the Keras model; `model(images, training=False)` must return
            logits `[batch, H, W, classes]` at the input's resolution for
            images of any size, normalized by `normalize_images` (`GFFNet`
            does).
        export_dir: the model base path; created if missing.
        mode: inference mode in the graph, `"whole"`, `"slide"` or
            `"ms_flip"` (see `predict_logits`). Defaults to `"whole"`.
        crop_size: window size for `"slide"` (and optionally `"ms_flip"`).
        stride: window stride; defaults as in `predict_logits`.
        scales: scales for `"ms_flip"`. Defaults to the paper's.
        flip: horizontal flip for `"ms_flip"`. Defaults to `True`.
        version: positive int; defaults to one more than the highest
            integer version already in `export_dir` (1 for a new one).
        freeze: bool, fold the weights into the graph (faster CPU serving,
            no variables). Defaults to `False`.

    Returns:
        The path of the written version directory.

    Raises:
        ValueError: for a bad `mode`, `crop_size`, `stride` or `version`
            (checked by tracing before anything is written).
        FileExistsError: when `export_dir/<version>` already exists.

    Example:

    >>> model = gff_keras.GFFNet(19, backbone="resnet18")
    >>> path = export_saved_model(model, "/tmp/gffnet")  # /tmp/gffnet/1
    >>> served = tf.saved_model.load(path)
    >>> out = served.signatures["serving_default"](
    ...     inputs=tf.zeros([1, 64, 96, 3], tf.uint8))
    >>> out["predictions"].shape
    TensorShape([1, 64, 96])
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}; received {mode!r}.")
    if version is None:
        version = _next_version(export_dir)
    is_int = isinstance(version, int) and not isinstance(version, bool)
    if not is_int or version <= 0:
        raise ValueError(
            f"`version` must be a positive int; received {version!r}."
        )
    path = os.path.join(export_dir, str(version))
    if tf.io.gfile.exists(path):
        raise FileExistsError(
            f"{path} exists; TensorFlow Serving versions are immutable, "
            "pick another `version` or leave it unset for the next one."
        )
    options = dict(
        mode=mode, crop_size=crop_size, stride=stride, scales=scales, flip=flip
    )

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.uint8, name="inputs")
        ]
    )
    def serve(inputs):
        return _segment(model, inputs, options)

    # Tracing now raises argument errors before anything is written.
    serve_images = serve.get_concrete_function()
    if freeze:
        serve_images = freeze_function(serve_images)

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    def serve_image_bytes(image_bytes):
        # A call of the other signature: the SavedModel holds the model's
        # graph (and, frozen, its weights) once.
        return serve_images(_decode_batch(image_bytes))

    signatures = {
        SERVING_DEFAULT: serve_images,
        SERVING_IMAGE_BYTES: serve_image_bytes.get_concrete_function(),
    }
    module = tf.Module()
    if not freeze:
        # The variables the signatures read, as plain TensorFlow variables:
        # the TF1-style loader of TensorFlow Serving and `saved_model_cli
        # run` restores those, and not a tracked Keras model (tensorflow
        # issue 72963). Only concrete functions are saved: a `tf.function`
        # in the saved object graph is traced again while saving (its
        # cache key holds the save context), which would trace the model
        # twice more.
        module.variables_read = _variables_read(signatures.values())
        # Callable after loading, as `loaded.serving_default(images)`.
        for name, function in signatures.items():
            setattr(module, name, function)

    def write_out(target):
        tf.saved_model.save(module, target, signatures=signatures)

    tf.io.gfile.makedirs(export_dir)
    if "://" in export_dir:
        # Object stores (gs://, s3://) cannot rename directories.
        write_out(path)
        return path
    # Model servers only look at integer directory names, so they never
    # load the temporary one.
    with atomic_files.replaced_when_written(path) as partial:
        write_out(partial)
    return path


def _variables_read(functions):
    """The variables `functions` read, each once, in the order first read."""
    variables = {}
    for function in functions:
        for variable in function.variables:
            variables.setdefault(id(variable), variable)
    return list(variables.values())


def _segment(model, images, options):
    """uint8 RGB `[B, H, W, 3]` -> the serving outputs."""
    with tf.control_dependencies([_check_images(images)]):
        normalized = normalize_images(images)
    if options["mode"] == "whole":
        # The argmax of the logits, exactly the Keras model's prediction.
        logits = predict_logits(model, normalized, output="logits")
        probabilities = tf.nn.softmax(logits, axis=-1)
    else:
        logits = probabilities = predict_logits(model, normalized, **options)
    return {
        "predictions": tf.argmax(logits, axis=-1, output_type=tf.int32),
        "confidence": tf.reduce_max(probabilities, axis=-1),
    }


def _check_images(images):
    """Asserts a run-time shape of `[batch >= 1, height >= 1, width >= 1, 3]`.

    Returns the last assertion; ops that depend on it run only after every
    check passed.
    """
    shape = _runtime_shape(images)
    is_image_batch = tf.logical_and(
        tf.equal(tf.size(shape), 4),
        tf.logical_and(
            tf.reduce_all(tf.equal(shape[-1:], 3)),
            tf.reduce_all(shape[1:3] > 0),
        ),
    )
    shape_check = tf.debugging.Assert(
        is_image_batch,
        [
            "inputs must be uint8 RGB images [batch, height, width, 3] of at "
            "least 1 x 1 pixels; received shape",
            shape,
        ],
        summarize=8,
    )
    # Second, so that a request with no images and a wrong shape names the
    # shape; `shape[:1]` (not `shape[0]`) stays valid for a scalar.
    with tf.control_dependencies([shape_check]):
        return tf.debugging.Assert(
            tf.reduce_all(shape[:1] > 0),
            [
                "inputs: the request holds no image (batch size 0); send at "
                "least one image; received shape",
                shape,
            ],
            summarize=8,
        )


def _runtime_shape(tensor):
    """`tf.shape(tensor)`, opaque to graph optimizations.

    The signatures declare their input shapes, but a signature call (and
    the model server) does not enforce them, and TensorFlow folds checks
    against a declared shape (such as its rank) into constants. Reading
    the shape through a data-dependent op (`boolean_mask`) keeps a check
    at run time.
    """
    declared = tf.shape(tensor)
    return tf.boolean_mask(declared, declared >= 0)


def _decode_batch(image_bytes):
    """string `[B]` of JPEG/PNG files -> uint8 `[B, H, W, 3]`."""
    shape = _runtime_shape(image_bytes)
    rank_check = tf.debugging.Assert(
        tf.equal(tf.size(shape), 1),
        [
            "image_bytes must be a string vector [batch] of encoded JPEG or "
            "PNG files, one per image (a single file is a batch of one); "
            "received shape",
            shape,
        ],
        summarize=8,
    )
    with tf.control_dependencies([rank_check]):
        count_check = tf.debugging.assert_positive(
            tf.size(image_bytes),
            message="image_bytes: the request holds no image",
        )
    with tf.control_dependencies([count_check]):
        # Every op below reads this copy, so neither taking the first file
        # nor unstacking the batch can fail before the checks above.
        image_bytes = tf.identity(image_bytes)

    def decode(data):
        header = tf.strings.substr(data, 0, len(PNG_HEADER))
        is_image = tf.logical_or(
            tf.equal(tf.strings.substr(data, 0, len(JPEG_HEADER)), JPEG_HEADER),
            tf.equal(header, PNG_HEADER),
        )
        check = tf.debugging.Assert(
            is_image,
            [
                "image_bytes: every element must be an encoded JPEG or PNG "
                "file; one starts with the bytes",
                # As numbers: raw bytes that are not UTF-8 would make the
                # error message itself undecodable (a UnicodeDecodeError
                # in Python clients instead of INVALID_ARGUMENT).
                tf.io.decode_raw(header, tf.uint8),
            ],
            summarize=len(PNG_HEADER),
        )
        with tf.control_dependencies([check]):
            # channels=3 turns grayscale and RGBA files into RGB.
            image = tf.io.decode_image(
                data, channels=3, dtype=tf.uint8, expand_animations=False
            )
        return image

    first_shape = tf.shape(decode(image_bytes[0]))

    def decode_same_size(data):
        image = decode(data)
        check = tf.debugging.assert_equal(
            tf.shape(image),
            first_shape,
            message=(
                "image_bytes: all images of one request must have the same "
                "height and width (they are predicted as one batch); send "
                "images of other sizes in separate requests. [height, "
                "width, channels] of this image and of the first"
            ),
        )
        with tf.control_dependencies([check]):
            return tf.identity(image)

    return tf.map_fn(
        decode_same_size,
        image_bytes,
        fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
    )


def _next_version(export_dir):
    if not tf.io.gfile.isdir(export_dir):
        return 1
    versions = [
        int(name.rstrip("/"))
        for name in tf.io.gfile.listdir(export_dir)
        if name.rstrip("/").isdigit()
    ]
    return max(versions, default=0) + 1
