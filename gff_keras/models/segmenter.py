import numbers

import keras

from gff_keras import keras_internals
from gff_keras.backbones.backbone import Backbone
from gff_keras.backbones.feature_pyramid_backbone import FeaturePyramidBackbone
from gff_keras.layers.bilinear_resize import BilinearResize
from gff_keras.losses.segmentation_loss import SegmentationLoss


def _part(value):
    """A part given as an object, or as its serialized config."""
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value)
    return value


def _serialized(part):
    return None if part is None else keras.saving.serialize_keras_object(part)


@keras.saving.register_keras_serializable(package="gff_keras")
class Segmenter(keras.Model):
    """A semantic segmenter composed of parts: the task model.

    `backbone` maps images to a dict of feature maps (fine to coarse); the
    `context` module reads the coarsest; the `head` reads the context and
    the backbone levels it names (`head.feature_levels`) and returns logits,
    which are resized bilinearly to the image's size (in float32 under mixed
    precision). The segmenter owns what a task owns:

    - the auxiliary head (`aux_head`, e.g. `FCNHead`) on the backbone
      feature `aux_level`: calling the model with `training=True` returns
      `(logits, aux_logits)`, inference returns the logits only;
    - the default loss: `compile` without `loss` uses
      `SegmentationLoss(ignore_label)`, and the auxiliary logits add the
      same loss weighted by `aux_loss_weight`, so `compile(optimizer=...)`
      and `fit` on `(images, labels)` batches train it;
    - the gate maps of a gated fusion head (`gate_maps`, the paper's
      Fig. 6/7, and `predict_with_zeroed_gate`).

    Any functional `keras.Model` with a dict of two or more feature maps,
    or a keras-hub / keras-cv backbone, serves as `backbone`: it is wrapped
    in a `FeaturePyramidBackbone`. `gff_keras.GFFNet` builds the parts from
    names and options.

    Args:
        backbone: a `Backbone`, or a Keras model `FeaturePyramidBackbone`
            accepts.
        context: the context module, a layer applied to the coarsest
            feature (e.g. `PyramidPooling`).
        head: a head (`ContextHead`, `FusionHead`, `DeepLabV3PlusHead`).
        aux_head: a head applied to one feature map during training (e.g.
            `FCNHead`), or `None`. Defaults to `None`.
        aux_level: the backbone feature the auxiliary head reads, or `None`
            for the second-to-last (ResNet's res4, the paper's "stage 3").
            Only with an auxiliary head. Defaults to `None`.
        aux_loss_weight: float, weight of the auxiliary loss. Defaults to
            `0.4`.
        ignore_label: int, label the default loss skips. Defaults to `255`.
        input_shape: image shape. Defaults to `(None, None, 3)`.
        **kwargs: base model arguments such as `name`.

    Raises:
        ValueError: for a backbone that is not one, an `aux_level` without
            an auxiliary head or not among the backbone's features, or head
            levels the backbone does not have or that are not ordered fine
            to coarse.

    Example:

    >>> from gff_keras.backbones import DilatedResNet
    >>> from gff_keras.heads import ContextHead, FCNHead
    >>> from gff_keras.layers import PyramidPooling
    >>> model = Segmenter(
    ...     backbone=DilatedResNet(depth=18),
    ...     context=PyramidPooling(64),
    ...     head=ContextHead(num_classes=5),
    ...     aux_head=FCNHead(num_classes=5, channels=32),
    ... )
    >>> model.predict(keras.ops.zeros((1, 65, 97, 3)), verbose=0).shape
    (1, 65, 97, 5)
    """

    def __init__(
        self,
        backbone,
        context,
        head,
        aux_head=None,
        aux_level=None,
        aux_loss_weight=0.4,
        ignore_label=255,
        input_shape=(None, None, 3),
        **kwargs,
    ):
        backbone = _part(backbone)
        context = _part(context)
        head = _part(head)
        aux_head = _part(aux_head)
        if not isinstance(backbone, Backbone):
            backbone = FeaturePyramidBackbone(backbone, name="backbone")
        names = backbone.feature_names
        level_names = tuple(head.feature_levels(names))
        strides = [backbone.feature_strides[name] for name in level_names]
        if strides != sorted(strides):
            raise ValueError(
                "A head's levels must go from the finest feature to the "
                f"coarsest; received {level_names} with strides "
                f"{tuple(strides)}."
            )
        if aux_head is None and aux_level is not None:
            raise ValueError(
                f"`aux_level={aux_level!r}` has no effect without an "
                "auxiliary head."
            )
        resolved_aux_level = aux_level or names[-2]
        if aux_head is not None and resolved_aux_level not in names:
            raise ValueError(
                f"`aux_level` must name a backbone feature from {names}; "
                f"received {aux_level!r}."
            )

        # === Functional Model ===
        images = keras.Input(shape=input_shape, name="images")
        features = backbone(images)
        context_features = context(features[names[-1]])
        head_outputs = head(
            [context_features] + [features[name] for name in level_names]
        )
        # Logits leave the model in float32 under mixed precision, resized
        # the way the head resizes (PyTorch's corner alignment for a head
        # ported from code that uses it).
        logits = BilinearResize(
            align_corners=getattr(head, "align_corners", False),
            dtype="float32",
            name="logits",
        )(head_outputs["logits"], images)
        aux_logits = None
        if aux_head is not None:
            aux_logits = BilinearResize(dtype="float32", name="aux_logits")(
                aux_head(features[resolved_aux_level]), images
            )
        super().__init__(inputs=images, outputs=logits, **kwargs)

        # Views of the same graph (no extra weights): training also returns
        # the auxiliary logits, and the gate maps can be read out.
        self._training_view = (
            keras.Model(
                images, [logits, aux_logits], name=f"{self.name}_training"
            )
            if aux_logits is not None
            else None
        )
        gates = head_outputs.get("gates")
        self._gate_view = (
            keras.Model(images, [logits, gates], name=f"{self.name}_gates")
            if gates
            else None
        )

        # === Config ===
        self.backbone = backbone
        self.context = context
        self.head = head
        self.aux_head = aux_head
        self.aux_level = resolved_aux_level if aux_head is not None else None
        self.aux_loss_weight = aux_loss_weight
        self.ignore_label = ignore_label
        self.image_shape = tuple(input_shape)
        self.head_levels = level_names
        self._segmentation_loss = None

    @property
    def num_classes(self):
        return self.head.num_classes

    @property
    def has_gates(self):
        """Whether the head's fusion has gates (`gate_maps` works)."""
        return self._gate_view is not None

    def gate_maps(self, images):
        """Returns `(logits, gates)` for a batch, in inference mode.

        Args:
            images: `[batch, H, W, 3]` preprocessed images.

        Returns:
            The logits and the list of gate maps, one per fused level
            (finest first; a gated FPN adds the context level last), each
            `[batch, H_i, W_i, gate_channels]` in `[0, 1]`.

        Raises:
            ValueError: if the head has no gates.
        """
        if self._gate_view is None:
            raise ValueError(
                f"{type(self.head).__name__} with fusion "
                f"{type(getattr(self.head, 'fusion', None)).__name__} has no "
                "gates; gate maps exist for GatedFullyFusion and "
                "GatedFPNFusion."
            )
        logits, gates = self._gate_view(images, training=False)
        return logits, list(gates)

    def predict_with_zeroed_gate(self, images, level):
        """Returns the logits with the gates of `level` set to 0 (Fig. 7b).

        "Setting `G_z` to 0" substitutes `G_z = 0` everywhere in eq. 5: level
        `z` sends nothing to the other levels and keeps its own features
        without the self-gate boost while receiving every other level's
        gated features with weight one (see `GatedFullyFusion`). The
        weights and the saved config are not touched; the switch is removed
        again before this method returns, even on error.

        Runs eagerly (like `gate_maps`), in inference mode.

        Args:
            images: `[batch, H, W, 3]` preprocessed images.
            level: int index of the gate to zero (0 is the finest, as in
                `gate_maps`), or a sequence of indices to zero together.

        Returns:
            float32 logits `[batch, H, W, num_classes]`.

        Raises:
            ValueError: if the head has no gates or a level is out of
                range.

        Example:

        >>> from gff_keras import GFFNet
        >>> model = GFFNet(4, backbone="resnet18", output_stride=32)
        >>> images = keras.ops.zeros((1, 64, 64, 3))
        >>> tuple(model.predict_with_zeroed_gate(images, 0).shape)
        (1, 64, 64, 4)
        """
        if self._gate_view is None:
            raise ValueError(
                f"{type(self.head).__name__} has no gates to zero; gates "
                "exist for GatedFullyFusion and GatedFPNFusion."
            )
        levels = (
            (level,) if isinstance(level, numbers.Integral) else tuple(level)
        )
        fusion = self.head.fusion
        num_gates = len(fusion.gate_convs)
        for index in levels:
            if (
                not isinstance(index, numbers.Integral)
                or not 0 <= index < num_gates
            ):
                raise ValueError(
                    f"`level` must be a gate index in 0..{num_gates - 1}; "
                    f"received {level!r}."
                )
        previous = fusion.zeroed_levels
        fusion.zeroed_levels = tuple(int(i) for i in levels)
        try:
            logits = self._gate_view(images, training=False)[0]
        finally:
            fusion.zeroed_levels = previous
        return logits

    def parameter_count(self, include_aux_head=False, trainable_only=True):
        """Counts parameters the way the paper's Table 3 does.

        Args:
            include_aux_head: bool, count the auxiliary head (used only in
                training). Defaults to `False`, as Table 3.
            trainable_only: bool, skip BatchNorm moving statistics, matching
                PyTorch's `parameters()`. Defaults to `True`.

        Returns:
            int, the number of scalars.
        """
        weights = self.trainable_weights if trainable_only else self.weights
        excluded = set()
        if self.aux_head is not None and not include_aux_head:
            excluded = {id(w) for w in self.aux_head.weights}
        return int(
            sum(
                int(keras.ops.size(w)) for w in weights if id(w) not in excluded
            )
        )

    def call(self, inputs, training=None, mask=None, **kwargs):
        if training and self._training_view is not None:
            logits, aux_logits = self._training_view(inputs, training=True)
            return logits, aux_logits
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """Configures training; without `loss`, uses `SegmentationLoss`.

        Args:
            optimizer: as `keras.Model.compile`.
            loss: a loss for the logits, or `None` for
                `SegmentationLoss(ignore_label=self.ignore_label)`. The same
                loss is applied to the auxiliary logits, weighted by
                `aux_loss_weight`.
            **kwargs: other `keras.Model.compile` arguments.
        """
        if loss is None:
            loss = SegmentationLoss(ignore_label=self.ignore_label)
        if isinstance(loss, (str, dict, list, tuple)):
            loss = keras.losses.get(loss)
        self._segmentation_loss = loss
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        aux_logits = None
        if isinstance(y_pred, (tuple, list)):
            y_pred, aux_logits = y_pred
        loss = super().compute_loss(
            x=x,
            y=y,
            y_pred=y_pred,
            sample_weight=sample_weight,
            training=training,
        )
        if aux_logits is not None and self._segmentation_loss is not None:
            aux_loss = self._segmentation_loss(y, aux_logits, sample_weight)
            loss = loss + self.aux_loss_weight * keras.ops.mean(aux_loss)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, (tuple, list)):
            y_pred = y_pred[0]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # See keras_internals.first_replica_batch (keras-team/keras#20585).
        batch = keras_internals.first_replica_batch(self, iterator)
        if batch is not None:
            iterator, data_batch = None, batch
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, data):
        logs = super().train_step(data)
        return keras_internals.multi_worker_logs(self, logs)

    def test_step(self, data):
        logs = super().test_step(data)
        return keras_internals.multi_worker_logs(self, logs)

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": _serialized(self.backbone),
            "context": _serialized(self.context),
            "head": _serialized(self.head),
            "aux_head": _serialized(self.aux_head),
            "ignore_label": self.ignore_label,
            "input_shape": self.image_shape,
        }
        if self.aux_head is not None:
            # Options of the auxiliary head only.
            config["aux_level"] = self.aux_level
            config["aux_loss_weight"] = self.aux_loss_weight
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
