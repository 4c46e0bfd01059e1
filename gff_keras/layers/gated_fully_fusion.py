import keras

from gff_keras.layers.multi_level import build_gate_convs
from gff_keras.layers.multi_level import compute_gates
from gff_keras.layers.multi_level import zero_gates
from gff_keras.layers.resizing import resize_like

FUSION_ORDERS = ("simultaneous", "sequential")
FUSION_IMPLEMENTATIONS = ("grouped", "reference")
GATE_INPUTS = ("reduced", "raw")


def group_levels(input_shape, level_strides=None):
    """Groups the levels that share one spatial size.

    With `level_strides`, levels of equal stride form a group whatever their
    static shapes (levels from stride-1 dilated stages have equal sizes for
    every input size). Without it, levels of equal, fully known static size
    form a group and a level of unknown size is a group of its own.

    Args:
        input_shape: list of the levels' `[batch, H, W, C]` shapes.
        level_strides: `None` or one stride (int) per level.

    Returns:
        A list of groups in the order of their first level, each a list of
        level indices in increasing order.

    Raises:
        ValueError: if `level_strides` does not have one entry per level, or
            if levels of equal stride have different known sizes.
    """
    if level_strides is not None and len(level_strides) != len(input_shape):
        raise ValueError(
            f"`level_strides` must have one stride per level; received "
            f"{tuple(level_strides)} for shapes {input_shape}."
        )
    groups = {}
    for level, shape in enumerate(input_shape):
        size = tuple(shape[1:3])
        if level_strides is not None:
            key = ("stride", level_strides[level])
        elif None not in size:
            key = ("size", size)
        else:
            key = ("level", level)
        groups.setdefault(key, []).append(level)
    for members in groups.values():
        sizes = {tuple(input_shape[m][1:3]) for m in members}
        known = {size for size in sizes if None not in size}
        if len(known) > 1:
            raise ValueError(
                "Levels with the same entry in `level_strides` must have the "
                f"same height and width; received strides "
                f"{tuple(level_strides)} for shapes {input_shape}."
            )
    return list(groups.values())


@keras.saving.register_keras_serializable(package="gff_keras")
class GatedFullyFusion(keras.layers.Layer):
    """Gated Fully Fusion of a feature pyramid (paper eq. 5).

    Every level `l` receives the gated features of every other level and keeps
    its own where its gate is high:

        X~_l = (1 + G_l) * X_l + (1 - G_l) * sum_{i != l} G_i * X_i
        G_i  = sigmoid(conv1x1(X_i))

    Other levels are resized bilinearly to level `l`'s size. With
    `order="simultaneous"` (the paper) every level reads the un-fused inputs.
    With `order="sequential"` (the authors' released code) levels are fused
    from the first (finest) to the last and a level that is already fused
    sends its fused value; the gates are computed once, from the inputs.

    The inputs must share one channel count; the GFF network reduces every
    backbone level to 256 channels with a 1x1 `ConvBNReLU` first. With
    `gate_input="raw"` (the authors' released code) each gate convolution
    reads a second input instead, the level before its reduction (any
    width), while eq. 5 still combines the reduced levels.

    Grouped computation (`implementation="grouped"`, simultaneous order
    only): a dilated backbone gives several levels one resolution (output
    stride 8: res3, res4 and res5 at 1/8). Bilinear resizing is linear, so
    the gated features of each group of equal-sized levels are summed once
    at their own size, each group sum is resized once to every other group's
    size, and level `l` receives the other members of its group plus the
    resized sums of the other groups: `G * (G - 1)` resizes for `G` groups
    instead of `L * (L - 1)`. The result equals `"reference"`, the direct
    double loop over levels, to float rounding. Groups come from
    `level_strides` when given, else from the static sizes known when the
    layer is called (a level of unknown size is then a group of its own, so
    models built on inputs of unknown size should pass `level_strides`).
    `order="sequential"` always runs the direct loop, since a fused level
    sends a value that differs from its group's input sum.

    Zeroing gates (the paper's gate ablation, Fig. 7b): the attribute
    `zeroed_levels`, a tuple of level indices (finest is 0), replaces those
    levels' gates by 0 everywhere before eq. 5 is applied. It is read at
    call time and is not part of the config or the weights, so saved models
    are unaffected. For a zeroed level `z`, `G_z = 0` in every place eq. 5
    uses it: `z` sends nothing (`G_z * X_z` leaves every other level's sum)
    and `z` loses its self-gate, receiving the others' messages with weight
    one: `X~_z = X_z + sum_{i != z} G_i * X_i`. With `order="sequential"`
    a zeroed level also sends nothing once fused. The returned gates are the
    ones used, i.e. zeros for zeroed levels. Functions traced while the
    attribute had another value keep that value; use it in eager calls
    (as `GFFNet.predict_with_zeroed_gate` does).

    Args:
        gate_channels: int, channels of each gate map: `1` (the paper, one
            gate per pixel broadcast over channels) or the feature width (the
            authors' code, one gate per pixel and channel). Defaults to `1`.
        order: `"simultaneous"` or `"sequential"`. Defaults to
            `"simultaneous"`.
        return_gates: bool, if `True` `call` returns `(fused, gates)` instead
            of `fused`, so the gate maps can be visualized from the same
            graph. Defaults to `False`.
        implementation: `"grouped"` (fewer resizes, see above) or
            `"reference"` (one resize per pair of levels). Defaults to
            `"grouped"`.
        level_strides: `None` or a sequence of one int per level, the
            level's stride relative to the image (e.g. `(4, 8, 8, 8)` for a
            ResNet at output stride 8). Levels of equal stride must have
            equal height and width for every input size. Only used to group
            levels. Defaults to `None`.
        gate_input: `"reduced"` (the gates read `inputs`, the paper) or
            `"raw"` (they read `raw_inputs`, the authors' code). Defaults to
            `"reduced"`.
        align_corners: bool, resize with PyTorch's `align_corners=True`
            sampling (the authors' code) instead of half-pixel centres.
            Defaults to `False`.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list of `L >= 2` tensors `[batch, H_i, W_i, C]`, finest first.
        raw_inputs: with `gate_input="raw"`, the list of `L` maps
            `[batch, H_i, W_i, C'_i]` the gates read.

    Returns:
        A list of `L` fused tensors shaped like the inputs, and with
        `return_gates=True` also the list of gate maps
        `[batch, H_i, W_i, gate_channels]` with values in `[0, 1]`.

    Raises:
        ValueError: for an unknown `order` or `implementation`, a
            `gate_channels` below 1 or a non-positive stride; when built,
            for inputs that are not a list of equally wide NHWC maps or
            `level_strides` that do not match them.

    Example:

    >>> gff = GatedFullyFusion()
    >>> levels = [keras.ops.ones((1, 32, 32, 8)), keras.ops.ones((1, 8, 8, 8))]
    >>> [tuple(x.shape) for x in gff(levels)]
    [(1, 32, 32, 8), (1, 8, 8, 8)]

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020.
    """

    def __init__(
        self,
        gate_channels=1,
        order="simultaneous",
        return_gates=False,
        implementation="grouped",
        level_strides=None,
        gate_input="reduced",
        align_corners=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if gate_input not in GATE_INPUTS:
            raise ValueError(
                f"`gate_input` must be one of {GATE_INPUTS}; received "
                f"{gate_input!r}."
            )
        if order not in FUSION_ORDERS:
            raise ValueError(
                f"`order` must be one of {FUSION_ORDERS}; received {order!r}."
            )
        if implementation not in FUSION_IMPLEMENTATIONS:
            raise ValueError(
                f"`implementation` must be one of {FUSION_IMPLEMENTATIONS}; "
                f"received {implementation!r}."
            )
        if int(gate_channels) < 1:
            raise ValueError(
                f"`gate_channels` must be >= 1; received {gate_channels}."
            )
        if level_strides is not None:
            level_strides = tuple(int(s) for s in level_strides)
            if any(s < 1 for s in level_strides):
                raise ValueError(
                    f"`level_strides` must be positive; received "
                    f"{level_strides}."
                )
        self.gate_channels = gate_channels
        self.order = order
        self.return_gates = return_gates
        self.implementation = implementation
        self.level_strides = level_strides
        self.gate_input = gate_input
        self.align_corners = align_corners
        # Not serialized: an analysis switch, not part of the model.
        self.zeroed_levels = ()

    def build(self, inputs_shape, raw_inputs_shape=None):
        if (raw_inputs_shape is None) != (self.gate_input == "reduced"):
            raise ValueError(
                f"`GatedFullyFusion(gate_input={self.gate_input!r})` "
                + (
                    "needs `raw_inputs`, the maps its gates read."
                    if raw_inputs_shape is None
                    else "reads its gates from `inputs`; it takes no "
                    "`raw_inputs`."
                )
            )
        self.gate_convs = build_gate_convs(
            self, inputs_shape, self.gate_channels, raw_inputs_shape
        )
        # Fails early on strides that cannot match the inputs.
        group_levels(inputs_shape, self.level_strides)
        self.built = True

    def call(self, inputs, raw_inputs=None):
        gate_inputs = inputs if self.gate_input == "reduced" else raw_inputs
        gates = compute_gates(self.gate_convs, gate_inputs)
        gates = zero_gates(gates, self.zeroed_levels)
        sent = [g * x for g, x in zip(gates, inputs)]
        if self.implementation == "grouped" and self.order == "simultaneous":
            received = self._grouped_received(inputs, sent)
            fused = [
                (1.0 + gate) * x + (1.0 - gate) * message
                for x, gate, message in zip(inputs, gates, received)
            ]
        else:
            fused = self._reference_fused(inputs, gates, sent)
        if self.return_gates:
            return fused, gates
        return fused

    def _reference_fused(self, inputs, gates, sent):
        """Eq. 5 level by level, one resize per pair of levels."""
        fused = []
        for level, (x, gate) in enumerate(zip(inputs, gates)):
            received = _sum(
                [
                    resize_like(message, x, self.align_corners)
                    for other, message in enumerate(sent)
                    if other != level
                ]
            )
            output = (1.0 + gate) * x + (1.0 - gate) * received
            fused.append(output)
            if self.order == "sequential":
                # Later levels receive this level's fused value.
                sent[level] = gate * output
        return fused

    def _grouped_received(self, inputs, sent):
        """Returns `sum_{i != l} resize(sent_i)` for every level `l`."""
        groups = group_levels([x.shape for x in inputs], self.level_strides)
        # The other members of a level's group are summed directly rather
        # than subtracted from the group sum: subtracting would cancel digits
        # (notably in float16) and saves no additions in groups of up to 3.
        within = {}
        group_sums = []
        for members in groups:
            for level in members:
                others = [sent[m] for m in members if m != level]
                within[level] = _sum(others)
            first = members[0]
            group_sums.append(
                sent[first]
                if within[first] is None
                else within[first] + sent[first]
            )
        received = [None] * len(inputs)
        for target, members in enumerate(groups):
            # Every member has the first member's size (see `group_levels`).
            reference = inputs[members[0]]
            from_others = _sum(
                [
                    resize_like(group_sum, reference, self.align_corners)
                    for source, group_sum in enumerate(group_sums)
                    if source != target
                ]
            )
            for level in members:
                received[level] = _sum([within[level], from_others])
        return received

    def compute_output_shape(self, inputs_shape, raw_inputs_shape=None):
        fused = [tuple(shape) for shape in inputs_shape]
        if self.return_gates:
            gates = [
                tuple(shape[:3]) + (self.gate_channels,)
                for shape in inputs_shape
            ]
            return fused, gates
        return fused

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "gate_channels": self.gate_channels,
                "order": self.order,
                "return_gates": self.return_gates,
                "implementation": self.implementation,
                "level_strides": self.level_strides,
                "gate_input": self.gate_input,
                "align_corners": self.align_corners,
            }
        )
        return config


def _sum(tensors):
    """Sums the tensors that are not `None`; `None` if there are none."""
    total = None
    for tensor in tensors:
        if tensor is not None:
            total = tensor if total is None else total + tensor
    return total
