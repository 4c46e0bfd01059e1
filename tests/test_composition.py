"""Models as parts: every front-door option checked against its part, any
Keras feature pyramid as a backbone, and configs nested like the parts."""

import json

import keras
import numpy as np
import pytest

from gff_keras import GFFNet
from gff_keras import Segmenter
from gff_keras.backbones import DilatedResNet
from gff_keras.backbones import FeaturePyramidBackbone
from gff_keras.heads import ContextHead
from gff_keras.heads import FCNHead
from gff_keras.heads import FusionHead
from gff_keras.layers import GatedFullyFusion
from gff_keras.layers import PyramidPooling
from gff_keras.models.gffnet import check_options
from gff_keras.training import ExperimentConfig
from gff_keras.training import apply_overrides
from tests.tolerances import assert_network_close

# For each front-door option: arguments under which it does not apply.
INAPPLICABLE = {
    "output_stride": dict(backbone=DilatedResNet(depth=18)),
    "stem": dict(backbone="densenet121"),
    "context_channels": dict(context="dense_aspp"),
    "context_rates": dict(context="ppm"),
    "gate_channels": dict(fusion="add"),
    "fusion_order": dict(fusion="none"),
    "fusion_implementation": dict(fusion="gated_fpn"),
    "dfp_kernel_size": dict(dfp=False),
    "dfp_dilation_rates": dict(dfp=False),
    "fused_channels": dict(fusion="none", dfp=False),
    "level_resolution": dict(head="deeplabv3plus"),
    "levels": dict(head="context"),
    "fuse_context": dict(fusion="fpn"),
    "decoder_level": dict(fusion="gff"),
    "dropout": dict(head=ContextHead(3)),
    "fusion": dict(head="context"),
    "dfp": dict(head=ContextHead(3)),
    "aux_level": dict(aux_head=False),
    "aux_loss_weight": dict(aux_head=False),
}
VALUES = {
    "output_stride": 16,
    "stem": "deep",
    "context_channels": 64,
    "context_rates": (6, 12, 18),
    "gate_channels": 16,
    "fusion_order": "sequential",
    "fusion_implementation": "reference",
    "dfp_kernel_size": 3,
    "dfp_dilation_rates": (3, 6, 9, 12),
    "fused_channels": 64,
    "level_resolution": "output_stride",
    "levels": ("res2", "res5"),
    "fuse_context": True,
    "decoder_level": "res2",
    "dropout": 0.2,
    "fusion": "gff",
    "dfp": True,
    "aux_level": "res3",
    "aux_loss_weight": 0.5,
}


@pytest.mark.parametrize("option", sorted(INAPPLICABLE))
def test_an_option_that_does_not_apply_raises_naming_it(option):
    arguments = {"backbone": "resnet18", **INAPPLICABLE[option]}
    arguments[option] = VALUES[option]
    with pytest.raises(ValueError, match=f"`{option}="):
        GFFNet(3, **arguments)


def test_the_same_options_apply_where_they_belong():
    """Each option above is accepted by the parts it configures."""
    for option, value in VALUES.items():
        context = {
            "context_channels": "aspp",
            "context_rates": "aspp",
        }.get(option, "ppm")
        head = "deeplabv3plus" if option == "decoder_level" else None
        if option == "fusion_order" or option == "fusion_implementation":
            fusion = "gff"
        else:
            fusion = None
        check_options(
            backbone="resnet18",
            context=context,
            head=head,
            **({"fusion": fusion} if fusion else {}),
            **{option: value},
        )


@pytest.mark.parametrize(
    "arguments,message",
    [
        (dict(backbone="vgg16"), "backbone='vgg16'"),
        (dict(context="psp"), "context='psp'"),
        (dict(fusion="sum"), "fusion='sum'"),
        (dict(head="unet"), "head='unet'"),
        (dict(head=ContextHead(5)), "differs from the head's 5"),
        (dict(dfp="pyramid"), "dfp='pyramid'"),
        (dict(dfp="dense_aspp", dfp_kernel_size=3), "dfp_kernel_size"),
    ],
)
def test_unknown_names_and_mismatched_parts_raise(arguments, message):
    with pytest.raises(ValueError, match=message):
        GFFNet(3, **arguments)


def test_the_authors_pyramid_is_a_fusion_head_part():
    model = GFFNet(3, backbone="resnet18", dfp="dense_aspp", fused_channels=8)
    pyramid = model.head.pyramid
    assert type(pyramid).__name__ == "DenseASPPFeaturePyramid"
    # Four levels: the authors' rates (3, 6, 9) continued.
    assert pyramid.dilation_rates == (3, 6, 9, 12)
    images = np.zeros((1, 45, 61, 3), "float32")
    assert model.predict(images, verbose=0).shape == (1, 45, 61, 3)


def keras_applications_encoder():
    resnet = keras.applications.ResNet50(weights=None, include_top=False)
    names = (
        "conv2_block3_out",
        "conv3_block4_out",
        "conv4_block6_out",
        "conv5_block3_out",
    )
    return keras.Model(
        resnet.input, {name: resnet.get_layer(name).output for name in names}
    )


def test_a_keras_applications_encoder_is_a_backbone(tmp_path):
    """GFF on a plain ResNet-50 (output stride 32), fusing all four levels."""
    model = GFFNet(4, backbone=keras_applications_encoder(), fused_channels=16)
    backbone = model.backbone
    assert isinstance(backbone, FeaturePyramidBackbone)
    assert backbone.feature_names == (
        "conv2_block3_out",
        "conv3_block4_out",
        "conv4_block6_out",
        "conv5_block3_out",
    )
    assert list(backbone.feature_strides.values()) == [4, 8, 16, 32]
    # Four resolutions: four groups, and the gates read every level.
    assert model.head.fusion.level_strides == (4, 8, 16, 32)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(1, 65, 97, 3)).astype("float32") * 50
    logits = model.predict(images, verbose=0)
    assert logits.shape == (1, 65, 97, 4)
    _, gates = model.gate_maps(images)
    assert [tuple(g.shape[1:3]) for g in gates] == [
        (17, 25),
        (9, 13),
        (5, 7),
        (3, 4),
    ]
    labels = rng.integers(0, 4, (2, 33, 41)).astype("int32")
    model.compile(optimizer=keras.optimizers.SGD(0.01), run_eagerly=True)
    history = model.fit(
        rng.normal(size=(2, 33, 41, 3)).astype("float32"),
        labels,
        epochs=1,
        verbose=0,
    )
    assert np.isfinite(history.history["loss"][0])
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, GFFNet)
    assert_network_close(loaded.predict(images, verbose=0), model(images))


def test_a_dict_output_model_with_unordered_names_is_sorted_by_stride():
    inputs = keras.Input((None, None, 3))
    fine = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)
    coarse = keras.layers.Conv2D(8, 3, strides=2, padding="same")(fine)
    encoder = keras.Model(inputs, {"P10": coarse, "P9": fine})
    backbone = FeaturePyramidBackbone(encoder)
    assert backbone.feature_names == ("P9", "P10")
    assert backbone.feature_strides == {"P9": 2, "P10": 4}
    assert backbone.feature_channels == {"P9": 4, "P10": 8}


def test_a_model_without_a_feature_pyramid_is_refused():
    inputs = keras.Input((None, None, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs), name="cnn")
    with pytest.raises(ValueError, match="'cnn' cannot serve as a backbone"):
        GFFNet(3, backbone=plain)
    with pytest.raises(ValueError, match="must be a Keras model"):
        GFFNet(3, backbone=object())


def test_a_segmenter_composed_by_hand_equals_the_front_door():
    keras.utils.set_random_seed(3)
    front = GFFNet(
        5,
        backbone="resnet18",
        fused_channels=16,
        context_channels=32,
        dfp=False,
        aux_head=False,
    )
    parts = Segmenter(
        backbone=DilatedResNet(depth=18, name="backbone"),
        context=PyramidPooling(32),
        head=FusionHead(
            5,
            fusion=GatedFullyFusion(
                return_gates=True, level_strides=(4, 8, 8, 8)
            ),
            channels=16,
        ),
    )
    assert front.parameter_count() == parts.parameter_count()
    parts.set_weights(front.get_weights())
    images = np.random.default_rng(1).normal(size=(1, 41, 37, 3))
    assert_network_close(parts(images), front(images))
    assert parts.has_gates and parts.head_levels == front.head_levels


def test_segmenter_round_trips_and_checks_its_auxiliary_level(tmp_path):
    model = Segmenter(
        backbone=DilatedResNet(depth=18, output_stride=32),
        context=PyramidPooling(32),
        head=ContextHead(3),
        aux_head=FCNHead(3, channels=8),
        aux_level="res3",
    )
    assert model.aux_level == "res3"
    path = tmp_path / "segmenter.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded) is Segmenter and loaded.aux_level == "res3"
    with pytest.raises(ValueError, match="aux_level"):
        Segmenter(
            backbone=DilatedResNet(depth=18),
            context=PyramidPooling(32),
            head=ContextHead(3),
            aux_level="res3",
        )
    with pytest.raises(ValueError, match="aux_level"):
        Segmenter(
            backbone=DilatedResNet(depth=18),
            context=PyramidPooling(32),
            head=ContextHead(3),
            aux_head=FCNHead(3),
            aux_level="res9",
        )


def test_model_config_sections_override_the_preset():
    config = apply_overrides(
        ExperimentConfig(),
        ["model.preset=gffnet_resnet18", "model.fusion.order=sequential"],
    )
    arguments = config.model.resolved_arguments()
    assert arguments["backbone"] == "resnet18"
    assert arguments["fusion_order"] == "sequential"
    # Through JSON and back, as a run directory stores it.
    assert ExperimentConfig.from_dict(json.loads(config.to_json())) == config


def test_an_inapplicable_config_key_is_an_error_naming_it():
    with pytest.raises(ValueError, match="model.fusion.order='sequential'"):
        apply_overrides(
            ExperimentConfig(),
            ["model.preset=pspnet_resnet18", "model.fusion.order=sequential"],
        )
    with pytest.raises(ValueError, match="model.head.channels=64"):
        apply_overrides(
            ExperimentConfig(),
            ["model.preset=pspnet_resnet18", "model.head.channels=64"],
        )


@pytest.mark.parametrize(
    "old,new",
    [
        ("model.fusion_order", "model.fusion.order"),
        ("model.dfp", "model.dfp.type"),
        ("model.backbone", "model.backbone.name"),
        ("model.fused_channels", "model.head.channels"),
        ("model.ppm_channels", "model.context.channels"),
        ("model.backbone_weights", "model.backbone.weights"),
    ],
)
def test_old_flat_keys_name_their_new_key(old, new):
    with pytest.raises(KeyError, match=f"'{old}' is now '{new}'"):
        apply_overrides(ExperimentConfig(), [f"{old}=1"])


def keras_hub_resnet18():
    keras_hub = pytest.importorskip("keras_hub")
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[2, 2, 2, 2],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),
    )


def keras_cv_resnet18_v2():
    keras_cv = pytest.importorskip("keras_cv")
    return keras_cv.models.ResNetV2Backbone(
        stackwise_filters=[64, 128, 256, 512],
        stackwise_blocks=[2, 2, 2, 2],
        stackwise_strides=[1, 2, 2, 2],
        include_rescaling=False,
    )


@pytest.mark.parametrize(
    "encoder", [keras_hub_resnet18, keras_cv_resnet18_v2], ids=["hub", "cv"]
)
def test_keras_hub_and_keras_cv_backbones_plug_in(encoder, tmp_path):
    """keras-hub's `pyramid_outputs`, keras-cv's `pyramid_level_inputs`."""
    model = GFFNet(
        4, backbone=encoder(), fused_channels=16, context_channels=32
    )
    assert model.backbone.feature_names == ("P2", "P3", "P4", "P5")
    assert model.backbone.feature_strides == {
        "P2": 4,
        "P3": 8,
        "P4": 16,
        "P5": 32,
    }
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 65, 97, 3)).astype("float32")
    assert model.predict(images, verbose=0).shape == (2, 65, 97, 4)
    model.compile(optimizer="sgd", run_eagerly=True)
    labels = rng.integers(0, 4, (2, 65, 97)).astype("int32")
    history = model.fit(images, labels, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert_network_close(loaded.predict(images, verbose=0), model(images))
