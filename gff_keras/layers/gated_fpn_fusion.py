import keras

from gff_keras.layers.multi_level import build_gate_convs
from gff_keras.layers.multi_level import compute_gates
from gff_keras.layers.multi_level import zero_gates
from gff_keras.layers.resizing import resize_like


@keras.saving.register_keras_serializable(package="gff_keras")
class GatedFPNFusion(keras.layers.Layer):
    """FPN top-down fusion with GFF's duplex gates (Table 1, "Gated FPN").

    The top level is kept, `X~_L = X_L`; every other level receives only the
    fused level directly above it, through the sender's and the receiver's
    gates:

        X~_l = (1 + G_l) * X_l + (1 - G_l) * resize(G_{l+1} * X~_{l+1})

    with `G_i = sigmoid(conv1x1(X_i))` computed from the inputs.

    Like `GatedFullyFusion`, the non-serialized attribute `zeroed_levels`
    (tuple of level indices, finest is 0) sets those gates to 0 at call
    time: a zeroed level sends nothing down and receives with weight one.

    Args:
        gate_channels: int, `1` or the feature width. Defaults to `1`.
        return_gates: bool, return `(fused, gates)`. Defaults to `False`.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list of `L >= 2` tensors `[batch, H_i, W_i, C]`, finest first.

    Returns:
        List of `L` tensors shaped like the inputs (and the gate maps with
        `return_gates=True`).

    Example:

    >>> fusion = GatedFPNFusion()
    >>> levels = [keras.ops.ones((1, 16, 16, 4)), keras.ops.ones((1, 8, 8, 4))]
    >>> [tuple(x.shape) for x in fusion(levels)]
    [(1, 16, 16, 4), (1, 8, 8, 4)]
    """

    # A top-down fusion: its last input is the top of the pyramid (a head
    # passes the context there).
    top_down = True

    def __init__(self, gate_channels=1, return_gates=False, **kwargs):
        super().__init__(**kwargs)
        self.gate_channels = gate_channels
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
        fused = [inputs[-1]]
        for level in reversed(range(len(inputs) - 1)):
            x, gate = inputs[level], gates[level]
            message = resize_like(gates[level + 1] * fused[-1], x)
            fused.append((1.0 + gate) * x + (1.0 - gate) * message)
        fused = fused[::-1]
        if self.return_gates:
            return fused, gates
        return fused

    def compute_output_shape(self, input_shape):
        fused = [tuple(shape) for shape in input_shape]
        if self.return_gates:
            return fused, [
                tuple(shape[:3]) + (self.gate_channels,)
                for shape in input_shape
            ]
        return fused

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "gate_channels": self.gate_channels,
                "return_gates": self.return_gates,
            }
        )
        return config
