import keras

from gff_keras.layers.multi_level import build_gate_convs
from gff_keras.layers.multi_level import compute_gates
from gff_keras.layers.multi_level import zero_gates
from gff_keras.layers.resizing import resize_like

FUSION_ORDERS = ("simultaneous", "sequential")


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
    backbone level to 256 channels with a 1x1 `ConvBNReLU` first.

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
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list of `L >= 2` tensors `[batch, H_i, W_i, C]`, finest first.

    Returns:
        A list of `L` fused tensors shaped like the inputs, and with
        `return_gates=True` also the list of gate maps
        `[batch, H_i, W_i, gate_channels]` with values in `[0, 1]`.

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
        **kwargs,
    ):
        super().__init__(**kwargs)
        if order not in FUSION_ORDERS:
            raise ValueError(
                f"`order` must be one of {FUSION_ORDERS}; received {order!r}."
            )
        if int(gate_channels) < 1:
            raise ValueError(
                f"`gate_channels` must be >= 1; received {gate_channels}."
            )
        self.gate_channels = gate_channels
        self.order = order
        self.return_gates = return_gates
        # Not serialized: an analysis switch, not part of the model.
        self.zeroed_levels = ()

    def build(self, input_shape):
        self.gate_convs = build_gate_convs(
            self, input_shape, self.gate_channels
        )
        self.built = True

    def call(self, inputs):
        gates = compute_gates(self.gate_convs, inputs)
        gates = zero_gates(gates, self.zeroed_levels)
        sent = [g * x for g, x in zip(gates, inputs)]
        fused = []
        for level, (x, gate) in enumerate(zip(inputs, gates)):
            received = None
            for other, message in enumerate(sent):
                if other == level:
                    continue
                message = resize_like(message, x)
                received = message if received is None else received + message
            output = (1.0 + gate) * x + (1.0 - gate) * received
            fused.append(output)
            if self.order == "sequential":
                # Later levels receive this level's fused value.
                sent[level] = gate * output
        if self.return_gates:
            return fused, gates
        return fused

    def compute_output_shape(self, input_shape):
        fused = [tuple(shape) for shape in input_shape]
        if self.return_gates:
            gates = [
                tuple(shape[:3]) + (self.gate_channels,)
                for shape in input_shape
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
            }
        )
        return config
