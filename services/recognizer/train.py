"""Train the digit CNN on MNIST and export what the recognizer serves.

    python -m services.recognizer.train --data /work/shared/mnist --out services/recognizer/model

Besides MNIST's training digits it learns from what the repository generates (synth/): digits
in the styles MNIST lacks, MNIST digits stretched to fill their box, and things that are not
digits, an eleventh class. A validation split then fits the temperature that makes confidence
honest and the threshold above which an image is refused as "not a digit" (calibration.py).

Writes ``<out>/saved_model/`` (a TensorFlow SavedModel with a ``serve`` endpoint: float32
[N, 28, 28, 1] in [0, 1], white ink on black -> calibrated softmax [N, 11]), ``model.tflite``,
``model.json``, ``MODEL_CARD.md`` and two plots. The MNIST test set is used only once, for the
final evaluation of the exported model, loaded the same way the service loads it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import keras
from keras import layers

from services.recognizer import calibration, card, corrections, evaluate, export, mnist
from services.recognizer.synth import dataset
from services.recognizer.model import TFLITE_FILE, VERSION_HEX_DIGITS, Interpreter, content_hash

INPUT_SHAPE = (28, 28, 1)
# Augmentation ranges: MNIST digits are already size-normalised and centred, so only small
# perturbations help; larger ones turn 6s into 9s and 1s into 7s.
ROTATION_DEGREES = 10.0
ZOOM = 0.10
SHIFT = 0.10  # fraction of 28 px, i.e. up to ~3 px
# Proportions and slant vary between writers far more than MNIST's own spread.
ASPECT = 0.15  # width ×(1 ± 0.15), height ÷ the same
SHEAR = 0.3  # x += 0.3·y at most: about ±17° of slant
# Shares of images written with a bolder or a finer pen than they came with.
PEN_BOLD = 0.15
PEN_FINE = 0.15
# Share of images with a stroke broken by a gap.
BREAK = 0.1
# The learning rate warms up from --lr / WARMUP_DIVISOR over the first epoch (Adam's early
# moment estimates are noisy) and decays, cosine-shaped, to --lr * FINAL_LR_FRACTION.
WARMUP_DIVISOR = 20
FINAL_LR_FRACTION = 0.005


def conv_bn_relu(x: keras.KerasTensor, filters: int, padding: str = "same") -> keras.KerasTensor:
    # No bias: BatchNorm's beta makes it redundant.
    x = layers.Conv2D(filters, 3, padding=padding, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def build_model(arch: str) -> keras.Model:
    """The network that is trained: no augmentation, logits for the 10 digits and "not a digit"."""
    inputs = keras.Input(shape=INPUT_SHAPE, dtype="float32", name="image")
    if arch == "small":
        x = conv_bn_relu(inputs, 32)
        x = layers.MaxPooling2D()(x)
        x = conv_bn_relu(x, 64)
        x = layers.MaxPooling2D()(x)
        x = layers.Flatten()(x)
        x = layers.Dense(128, activation="relu")(x)
        x = layers.Dropout(0.5)(x)
    elif arch == "deep":
        # Valid padding and an early pool keep the work at 28x28 small: training on two shared
        # CPU cores is compute-bound, so FLOPs per image decide how many epochs fit.
        x = layers.Conv2D(32, 5, use_bias=False)(inputs)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
        x = conv_bn_relu(x, 64, padding="valid")
        x = conv_bn_relu(x, 64, padding="valid")
        x = layers.MaxPooling2D()(x)
        x = layers.Flatten()(x)
        x = layers.Dense(256, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Dropout(0.4)(x)
    else:
        raise ValueError(f"unknown arch {arch!r}")
    outputs = layers.Dense(dataset.CLASSES, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"digits_{arch}")


def served_model(trained: keras.Model, temperature: float) -> keras.Model:
    """What is exported: the trained network, its logits divided by the fitted temperature,
    then softmax. The temperature is a constant of the graph, so the SavedModel, the flat
    buffer and the service all give the calibrated probabilities."""
    logits = trained(trained.inputs[0])
    scaled = layers.Rescaling(1.0 / temperature, name="temperature")(logits)
    outputs = layers.Softmax(name="probabilities")(scaled)
    return keras.Model(trained.inputs[0], outputs, name=trained.name)


def random_affine(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Rotate, zoom, stretch, slant and shift each image of a [B, 28, 28, 1] batch at random
    about its centre.

    One fused transform op per batch, in the input pipeline: it never reaches the exported
    model, and stateless randomness keyed on (seed, step) keeps runs reproducible.
    """
    n = tf.shape(images)[0]
    u = tf.random.stateless_uniform([n, 6], seed=seed, minval=-1.0, maxval=1.0)
    angle = u[:, 0] * (ROTATION_DEGREES * math.pi / 180.0)
    scale = 1.0 + u[:, 1] * ZOOM
    sx, sy = scale * (1.0 + u[:, 4] * ASPECT), scale / (1.0 + u[:, 4] * ASPECT)
    shear = u[:, 5] * SHEAR
    tx, ty = u[:, 2] * (SHIFT * 28), u[:, 3] * (SHIFT * 28)
    # Forward map A = rotation @ shear @ diag(sx, sy) about the centre, then the shift. The op
    # maps each output pixel to the input pixel it samples, so it is given the inverse.
    cos, sin = tf.cos(angle), tf.sin(angle)
    m00, m01 = cos * sx, (cos * shear - sin) * sy
    m10, m11 = sin * sx, (sin * shear + cos) * sy
    det = m00 * m11 - m01 * m10
    a0, a1, b0, b1 = m11 / det, -m01 / det, -m10 / det, m00 / det
    centre = (28 - 1) / 2.0
    a2 = centre - a0 * (centre + tx) - a1 * (centre + ty)
    b2 = centre - b0 * (centre + tx) - b1 * (centre + ty)
    zeros = tf.zeros_like(angle)
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1),
        output_shape=tf.constant([28, 28]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return random_pen(moved, seed)


def random_pen(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A bolder pen for some images (a 2×2 dilation), a finer one for others (half an erosion:
    a full one would erase MNIST's thinnest strokes)."""
    n = tf.shape(images)[0]
    pick = tf.random.stateless_uniform([n, 1, 1, 1], seed=seed + 1)
    bold = tf.nn.max_pool2d(images, 2, 1, "SAME")
    fine = 0.5 * images - 0.5 * tf.nn.max_pool2d(-images, 2, 1, "SAME")
    images = tf.where(pick < PEN_BOLD, bold, tf.where(pick < PEN_BOLD + PEN_FINE, fine, images))
    return random_break(images, seed + 2)


def random_break(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A dry pen or a lifted one: for some images, a 1-2 px band across the digit, rows or
    columns, erased, so that a stroke with a gap still reads as its digit."""
    n = tf.shape(images)[0]
    u = tf.random.stateless_uniform([n, 4], seed=seed)
    start = 8.0 + u[:, 1] * 12.0  # somewhere in the middle of the 20 px box
    width = 1.0 + tf.round(u[:, 2])
    index = tf.range(28, dtype=tf.float32)[None, :]
    band = tf.cast((index >= start[:, None]) & (index < (start + width)[:, None]), tf.float32)  # [n, 28]
    rows = band[:, :, None, None]  # erase rows
    cols = band[:, None, :, None]  # or columns
    across = tf.where((u[:, 3] < 0.5)[:, None, None, None], rows, cols)
    broken = images * (1.0 - across)
    return tf.where((u[:, 0] < BREAK)[:, None, None, None], broken, images)


def train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, epochs: int, seed: int,
                  augment: bool) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((mnist.to_model_input(x), y.astype(np.int32)))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size).repeat(epochs)
    if augment:
        ds = ds.enumerate().map(
            lambda step, batch: (random_affine(batch[0], tf.stack([tf.constant(seed, tf.int64), step])),
                                 batch[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def architecture_lines(model: keras.Model) -> list[str]:
    lines = []
    for layer in model.layers[1:]:
        desc = layer.__class__.__name__
        if isinstance(layer, layers.Conv2D):
            desc += f" {layer.filters}@{layer.kernel_size[0]}x{layer.kernel_size[1]} {layer.padding}"
        elif isinstance(layer, layers.Dense):
            desc += f" {layer.units} {layer.activation.__name__}"
        elif isinstance(layer, layers.Dropout):
            desc += f" {layer.rate:g}"
        lines.append(f"{desc:<28} -> {tuple(layer.output.shape[1:])!s:<14} params={layer.count_params():,}")
    return lines


def training_data(args: argparse.Namespace, data: mnist.Mnist) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_val, y_val, counts): MNIST's training digits less a validation
    share, some of them again stretched to fill their box, synthetic styles and non-digits.
    The validation split (MNIST digits and synthetic ones from another seed) fits the
    temperature and the refusal threshold; MNIST's test set is never touched here."""
    val_idx, train_idx = dataset.split_mnist(len(data.x_train), args.val_mnist, args.seed)
    # The generator's state after the split's permutation, as it always was (reproducibility).
    rng = np.random.default_rng(args.seed)
    rng.permutation(len(data.x_train))
    stretched_idx = rng.choice(train_idx, args.stretched, replace=False)
    x_stretched = dataset.stretched_mnist(data.x_train[stretched_idx], args.seed)
    x_extra, y_extra = dataset.extra_training_set(args.seed, args.styles, args.not_digits)
    x_val, y_val = dataset.validation_set(data.x_train, data.y_train, args.seed, args.val_mnist, args.val_synthetic)
    # People's corrections (make export-corrections), if given: training only, never validation.
    x_fixed, y_fixed = corrections.load(args.corrections) if args.corrections else (x_extra[:0], y_extra[:0])
    # A few hundred among ~60k barely move the weights: each may be shown several times an epoch.
    x_fixed, y_fixed = np.repeat(x_fixed, args.corrections_repeat, 0), np.repeat(y_fixed, args.corrections_repeat, 0)
    x_train = np.concatenate([data.x_train[train_idx], x_stretched, x_extra, x_fixed])
    y_train = np.concatenate([data.y_train[train_idx], data.y_train[stretched_idx], y_extra, y_fixed])
    counts = {
        "mnist_train": len(train_idx), "mnist_stretched": args.stretched, "synthetic_styles": args.styles,
        "synthetic_not_digits": args.not_digits, "validation_mnist": len(val_idx),
        "validation_synthetic_styles": args.val_synthetic, "validation_synthetic_not_digits": args.val_synthetic,
        **({"corrections": len(y_fixed) // args.corrections_repeat} if args.corrections else {}),
        **({"corrections_repeat": args.corrections_repeat} if args.corrections and args.corrections_repeat != 1 else {}),
    }  # fmt: skip
    return x_train, y_train, x_val, y_val, counts


def calibrate(model: keras.Model, x_val: np.ndarray, y_val: np.ndarray, max_digits_refused: float,
              out: Path) -> dict[str, Any]:
    """Fit the temperature and the refusal threshold on the validation split; write the
    reliability diagram and the refusal trade-off curve next to the model."""
    logits = model.predict(mnist.to_model_input(x_val), batch_size=1000, verbose=0)
    is_digit = y_val < 10
    # Fitted where `confidence` is read: the digits' probabilities given a digit, on digits
    # (the refusal threshold is then chosen on the scaled outputs, so it absorbs T).
    temperature = calibration.fit_temperature(logits[is_digit, :10], y_val[is_digit].astype(np.int64))
    before, after = calibration.softmax(logits, 1.0), calibration.softmax(logits, temperature)
    rel_before = calibration.digit_reliability(before[is_digit], y_val[is_digit])
    rel_after = calibration.digit_reliability(after[is_digit], y_val[is_digit])
    calibration.plot_reliability(rel_before, rel_after, str(out / "calibration.png"),
                                 "Confidence of the served digit, validation digits")
    return {
        "temperature": round(temperature, 4),
        "ece_before": round(rel_before.ece, 5),
        "ece_after": round(rel_after.ece, 5),
        "validation_accuracy": round(float((after[is_digit, :10].argmax(1) == y_val[is_digit]).mean()), 5),
        **calibration.refusal(after[:, calibration.NOT_A_DIGIT], is_digit, max_digits_refused, out / "refusal.png"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="directory with the four MNIST .gz files")
    p.add_argument("--out", required=True, help="output directory for saved_model/, model.json, MODEL_CARD.md")
    p.add_argument("--arch", choices=("small", "deep"), default="deep")
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--styles", type=int, default=24_000, help="synthetic digits in the styles MNIST lacks")
    p.add_argument("--not-digits", type=int, default=20_000, help="synthetic non-digits (letters, symbols, ...)")
    p.add_argument("--stretched", type=int, default=12_000, help="MNIST digits added again, stretched to fill their box")
    p.add_argument("--val-mnist", type=int, default=5_000, help="MNIST training digits held out for calibration")
    p.add_argument("--val-synthetic", type=int, default=4_000, help="synthetic digits and non-digits each, for calibration")
    p.add_argument("--corrections", help="a folder of exported corrections (make export-corrections) to train on too")
    p.add_argument("--corrections-repeat", type=int, default=1, help="each correction this many times an epoch")
    p.add_argument("--max-digits-refused", type=float, default=0.0,
                   help="the refusal threshold refuses at most this share of validation digits (0: none)")
    p.add_argument("--no-determinism", dest="determinism", action="store_false",
                   help="skip tf.config.experimental.enable_op_determinism()")
    p.add_argument("--note", action="append", default=[],
                   help="caveat for model.json and the card, e.g. how hyperparameters were chosen")
    args = p.parse_args(argv)
    command = "python -m services.recognizer.train " + shlex.join(sys.argv[1:] if argv is None else argv)

    keras.utils.set_random_seed(args.seed)
    if args.determinism:
        tf.config.experimental.enable_op_determinism()

    data = mnist.load(args.data)
    checksums = mnist.sha256sums(args.data)
    started = time.perf_counter()
    x_train, y_train, x_val, y_val, counts = training_data(args, data)
    print(f"training data: {counts} ({time.perf_counter() - started:.0f} s to make)", flush=True)
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    train_ds = train_dataset(x_train, y_train, args.batch_size, args.epochs, args.seed, args.augment)

    model = build_model(args.arch)
    steps = args.epochs * steps_per_epoch
    warmup = min(steps_per_epoch, steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=args.lr / WARMUP_DIVISOR,
        decay_steps=steps - warmup,
        alpha=FINAL_LR_FRACTION,
        warmup_target=args.lr,
        warmup_steps=warmup,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.summary()

    start = time.perf_counter()
    model.fit(train_ds, epochs=args.epochs, steps_per_epoch=steps_per_epoch, verbose=2)
    seconds = time.perf_counter() - start

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    calibrated = calibrate(model, x_val, y_val, args.max_digits_refused, out)
    test_logits = model.predict(mnist.to_model_input(data.x_test), batch_size=1000, verbose=0)
    test_before = calibration.digit_reliability(calibration.softmax(test_logits), data.y_test)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        staged = Path(tmp) / "saved_model"
        served_model(model, calibrated["temperature"]).export(str(staged), format="tf_saved_model", verbose=False)
        version = content_hash(staged)[:VERSION_HEX_DIGITS]
        size = tree_size(staged)
        # Score the converted artefact, not the in-memory Keras model: it is what gets served.
        flatbuffer, tflite = export.checked(staged)
        served = Interpreter(flatbuffer)
        result = evaluate.evaluate(served, data.x_test, data.y_test)
        test_probabilities = served.predict(mnist.to_model_input(data.x_test))
        latency = evaluate.latency_ms(served, data.x_test[0])
        loaded = tf.saved_model.load(str(staged))
        signature = loaded.signatures["serving_default"]
        (input_name, input_spec), = signature.structured_input_signature[1].items()
        (output_key, _), = signature.structured_outputs.items()
        shutil.rmtree(out / "saved_model", ignore_errors=True)
        staged.rename(out / "saved_model")
        (out / TFLITE_FILE).write_bytes(flatbuffer)
    test_after = calibration.digit_reliability(test_probabilities, data.y_test)
    refused = test_probabilities[:, calibration.NOT_A_DIGIT] >= calibrated["not_digit_threshold"]

    meta: dict[str, Any] = {
        "version": version,
        "name": model.name,
        "parameters": int(model.count_params()),
        "saved_model_bytes": size,
        "tflite": tflite,
        "latency_ms_batch1": round(latency, 4),
        "input": {
            "endpoint": "serve",
            "name": input_name,
            "shape": [None, *INPUT_SHAPE],
            "dtype": input_spec.dtype.name,
            "range": [0.0, 1.0],
            "polarity": "white ink (1.0) on black background (0.0), as MNIST",
        },
        "output": {"signature_key": output_key, "shape": [None, dataset.CLASSES], "dtype": "float32",
                   "meaning": "calibrated softmax probabilities for digits 0-9 and, at index 10, not a digit"},
        "calibration": calibrated,
        "test": {"accuracy": result.accuracy, "errors": result.errors, "total": result.total,
                 "confusion_matrix": result.confusion,
                 "ece_before": round(test_before.ece, 5), "ece_after": round(test_after.ece, 5),
                 "refused": int(refused.sum())},
        "training": {
            "command": command,
            "arch": args.arch,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "lr_schedule": f"linear warm-up {args.lr / WARMUP_DIVISOR:g} -> {args.lr:g} over {warmup} steps, "
                           f"then cosine decay to {args.lr * FINAL_LR_FRACTION:g} over {steps - warmup} steps",
            "augmentation": ({"rotation_degrees": ROTATION_DEGREES, "zoom": ZOOM, "shift": SHIFT,
                              "aspect": ASPECT, "shear": SHEAR, "pen_bold": PEN_BOLD, "pen_fine": PEN_FINE,
                              "broken": BREAK}
                             if args.augment else None),
            "examples": counts,
            "op_determinism": args.determinism,
            "train_examples": len(x_train),
            "validation_examples": len(x_val),
            "seconds": round(seconds, 1),
            "seconds_per_epoch": round(seconds / args.epochs, 1),
        },
        "architecture": architecture_lines(model),
        "notes": args.note,
        "data": {"name": "MNIST", "license": "CC BY-SA 3.0", "sha256": checksums},
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "python_version": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
    }
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(card.render(meta))
    print(f"exported {version}: test accuracy {result.accuracy:.4f}, {meta['parameters']} params, "
          f"{size / 1e6:.2f} MB, batch-1 latency {latency:.3f} ms, training {seconds:.0f} s, "
          f"T={calibrated['temperature']}, threshold {calibrated['not_digit_threshold']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
