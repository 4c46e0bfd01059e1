"""Converts the GFF authors' released PyTorch checkpoint to a Keras model.

    python scripts/convert_checkpoint.py --checkpoint=GFFNet_best.pth \\
        --output=gffnet_wrn38_cityscapes.keras

Reads the `.pth` without PyTorch (`gff_keras.convert.read_torch_checkpoint`),
builds the `deeplabv3plus_gff_dfp_wrn38` preset (the authors'
`DeepWV3PlusGFFNet`), loads every weight by strict key matching and saves
the model. It prints the checkpoint's `epoch` and `mean_iu` and the model's
parameter count. docs/pretrained.md tells where to get the checkpoint.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "The authors' .pth file (e.g. GFFNet_best.pth)."
)
_OUTPUT = flags.DEFINE_string("output", None, "The .keras file to write.")
_INPUT_PREPROCESSING = flags.DEFINE_enum(
    "input_preprocessing",
    "caffe",
    ["caffe", "torch"],
    "caffe: the model takes the pipelines' input (BGR, ImageNet mean "
    "subtracted), as every gff_keras tool feeds it; torch: the authors' "
    "input (RGB in [0, 1], standardized).",
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace --output if it exists."
)
flags.mark_flags_as_required(["checkpoint", "output"])


def main(argv):
    del argv
    from gff_keras.convert import CheckpointError
    from gff_keras.convert import authors_gffnet
    from gff_keras.convert import load_torch_checkpoint

    output = _OUTPUT.value
    if not output.endswith(".keras"):
        raise app.UsageError(f"--output={output!r} must end in .keras.")
    if os.path.exists(output) and not _OVERWRITE.value:
        raise app.UsageError(
            f"--output={output!r} exists; pass --overwrite to replace it."
        )
    try:
        checkpoint = load_torch_checkpoint(_CHECKPOINT.value)
        state_dict = checkpoint
        if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
            state_dict = checkpoint["state_dict"]
        if not isinstance(state_dict, dict):
            raise CheckpointError(
                f"{_CHECKPOINT.value}: holds no state dict (a dict of tensors)."
            )
        model = authors_gffnet(
            state_dict, input_preprocessing=_INPUT_PREPROCESSING.value
        )
    except (OSError, ValueError) as error:
        print(f"convert_checkpoint.py: error: {error}", file=sys.stderr)
        return 1
    for key in ("epoch", "mean_iu"):
        if isinstance(checkpoint, dict) and key in checkpoint:
            print(f"{key}: {checkpoint[key]}")
    print(f"classes: {model.num_classes}")
    print(f"parameters: {model.parameter_count():,}")
    directory = os.path.dirname(os.path.abspath(output))
    os.makedirs(directory, exist_ok=True)
    # Written under a temporary name: an interrupted save leaves no
    # truncated model behind.
    partial = output + ".partial.keras"
    model.save(partial)
    os.replace(partial, output)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
