"""SegmentationMetrics against numpy and the official Cityscapes script."""

import copy

import keras
import numpy as np
import tensorflow as tf
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling
from cityscapesscripts.helpers import labels as cs_labels
from PIL import Image

from gff_keras.data import dataset_info
from gff_keras.evaluation import SegmentationMetrics

NUM_CLASSES = 5


def numpy_reference(batches, num_classes=NUM_CLASSES, ignore=255):
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for labels, predictions in batches:
        for label, prediction in zip(labels.ravel(), predictions.ravel()):
            if label != ignore:
                confusion[label, prediction] += 1
    tp = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        accuracy = np.where(confusion.sum(1) > 0, tp / confusion.sum(1), np.nan)
    return {
        "mean_iou": np.nanmean(iou),
        "pixel_accuracy": tp.sum() / confusion.sum(),
        "mean_accuracy": np.nanmean(accuracy),
        "per_class_iou": iou,
    }


def random_batches(count=3, seed=0, absent_class=None):
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        labels = rng.integers(0, NUM_CLASSES, (2, 9, 11))
        labels[rng.random(labels.shape) < 0.2] = 255
        predictions = rng.integers(0, NUM_CLASSES, (2, 9, 11))
        if absent_class is not None:
            labels[labels == absent_class] = 255
            predictions[predictions == absent_class] = 0
        batches.append((labels, predictions))
    return batches


def assert_matches(result, expected):
    for key, value in expected.items():
        np.testing.assert_allclose(
            np.asarray(result[key]), value, rtol=1e-12, err_msg=key
        )


def test_matches_numpy_over_several_batches():
    batches = random_batches(absent_class=3)
    metric = SegmentationMetrics(NUM_CLASSES)
    for labels, predictions in batches:
        metric.update_state(labels, predictions)
    result = metric.result()
    expected = numpy_reference(batches)
    assert np.isnan(expected["per_class_iou"][3])
    assert_matches(result, expected)
    assert metric.confusion.dtype == "int64"
    metric.reset_state()
    assert int(np.asarray(metric.confusion).sum()) == 0


def test_logits_are_reduced_by_argmax():
    labels, predictions = random_batches(1)[0]
    logits = keras.ops.one_hot(predictions, NUM_CLASSES) * 5.0
    metric = SegmentationMetrics(NUM_CLASSES)
    metric.update_state(labels, logits)
    assert_matches(metric.result(), numpy_reference([(labels, predictions)]))


def test_summed_across_replicas(two_replicas):
    strategy = two_replicas
    batches = random_batches(2, seed=1)
    labels = np.concatenate([b[0] for b in batches])
    predictions = np.concatenate([b[1] for b in batches])
    with strategy.scope():
        metric = SegmentationMetrics(NUM_CLASSES)
    dataset = tf.data.Dataset.from_tensor_slices((labels, predictions)).batch(4)
    for batch in strategy.experimental_distribute_dataset(dataset):
        strategy.run(metric.update_state, args=batch)
    assert_matches(metric.result(), numpy_reference(batches))


def test_config_round_trip():
    metric = SegmentationMetrics(7, ignore_label=0, name="seg")
    restored = SegmentationMetrics.from_config(metric.get_config())
    assert (restored.num_classes, restored.ignore_label, restored.name) == (
        7,
        0,
        "seg",
    )


def test_usable_as_a_fit_metric():
    from gff_keras import GFFNet

    model = GFFNet(
        NUM_CLASSES, backbone="resnet18", fused_channels=8, context_channels=16
    )
    model.compile(
        optimizer="sgd",
        metrics=[SegmentationMetrics(NUM_CLASSES)],
        run_eagerly=True,
    )
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 33, 33, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, (2, 33, 33))
    logs = model.evaluate(images, labels, verbose=0, return_dict=True)
    predictions = np.argmax(model.predict(images, verbose=0), axis=-1)
    expected = numpy_reference([(labels, predictions)])
    np.testing.assert_allclose(
        logs["mean_iou"], expected["mean_iou"], rtol=1e-5
    )
    assert np.shape(logs["per_class_iou"]) == (NUM_CLASSES,)


def test_matches_official_cityscapes_evaluation(tmp_path):
    info = dataset_info("cityscapes")
    eval_ids = [
        label.id
        for label in cs_labels.labels
        if label.id >= 0 and not label.ignoreInEval
    ]
    all_ids = [label.id for label in cs_labels.labels if label.id >= 0]
    rng = np.random.default_rng(3)
    truth_files, prediction_files, batches = [], [], []
    for frame in ("000294", "000576"):
        stem = f"frankfurt_000000_{frame}"
        # Ground truth uses every labelId, ignored ones included; "train"
        # (31) is absent everywhere, so its IoU is undefined.
        truth = rng.choice([i for i in all_ids if i != 31], (24, 40))
        prediction = rng.choice([i for i in eval_ids if i != 31], (24, 40))
        # Half the labelled pixels right, so IoUs are far from 1 / 19.
        right = rng.random(truth.shape) < 0.5
        prediction = np.where(
            right & np.isin(truth, eval_ids), truth, prediction
        )
        truth_files.append(str(tmp_path / f"{stem}_gtFine_labelIds.png"))
        prediction_files.append(str(tmp_path / f"{stem}_pred.png"))
        Image.fromarray(truth.astype(np.uint8)).save(truth_files[-1])
        Image.fromarray(prediction.astype(np.uint8)).save(prediction_files[-1])
        batches.append((info.label_table[truth], info.label_table[prediction]))

    args = copy.copy(evalPixelLevelSemanticLabeling.args)
    args.quiet = True
    args.JSONOutput = False
    args.evalInstLevelScore = False  # needs *_instanceIds.png files
    args.exportFile = str(tmp_path / "result.json")
    official = evalPixelLevelSemanticLabeling.evaluateImgLists(
        prediction_files, truth_files, args
    )

    metric = SegmentationMetrics(info.num_classes)
    for labels, predictions in batches:
        metric.update_state(labels[None], predictions[None])
    result = metric.result()
    official_iou = [official["classScores"][n] for n in info.class_names]
    assert np.isnan(official_iou[info.class_names.index("train")])
    np.testing.assert_allclose(
        np.asarray(result["per_class_iou"]), official_iou, rtol=1e-12
    )
    np.testing.assert_allclose(
        float(result["mean_iou"]), official["averageScoreClasses"], rtol=1e-12
    )
    assert not (tmp_path / "result.json").exists()
