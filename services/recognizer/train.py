"""Train the digit CNN on MNIST and export what the recognizer serves.

    python -m services.recognizer.train --data /work/shared/mnist --out services/recognizer/model

Writes ``<out>/saved_model/`` (a TensorFlow SavedModel with a ``serve`` endpoint: float32
[N, 28, 28, 1] in [0, 1], white ink on black -> softmax [N, 10]), ``<out>/model.json`` and
``<out>/MODEL_CARD.md``. The test set is used only once, for the final evaluation of the
exported SavedModel, loaded the same way the service loads it.
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

from services.recognizer import evaluate, export, mnist
from services.recognizer.model import TFLITE_FILE, VERSION_HEX_DIGITS, Interpreter, content_hash

INPUT_SHAPE = (28, 28, 1)
# Augmentation ranges: MNIST digits are already size-normalised and centred, so only small
# perturbations help; larger ones turn 6s into 9s and 1s into 7s.
ROTATION_DEGREES = 10.0
ZOOM = 0.10
SHIFT = 0.10  # fraction of 28 px, i.e. up to ~3 px
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
    """The network that is exported: no augmentation, softmax output."""
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
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"digits_{arch}")


def random_affine(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Rotate, zoom and shift each image of a [B, 28, 28, 1] batch at random about its centre.

    One fused transform op per batch, in the input pipeline: it never reaches the exported
    model, and stateless randomness keyed on (seed, step) keeps runs reproducible.
    """
    n = tf.shape(images)[0]
    u = tf.random.stateless_uniform([n, 4], seed=seed, minval=-1.0, maxval=1.0)
    angle = u[:, 0] * (ROTATION_DEGREES * math.pi / 180.0)
    scale = 1.0 + u[:, 1] * ZOOM
    tx, ty = u[:, 2] * (SHIFT * 28), u[:, 3] * (SHIFT * 28)
    # The op maps each output pixel to the input pixel it samples, so give it the inverse:
    # input = R(-angle) / scale @ (output - centre - shift) + centre.
    centre = (28 - 1) / 2.0
    a0, a1 = tf.cos(angle) / scale, tf.sin(angle) / scale
    b0, b1 = -a1, a0
    a2 = centre - a0 * (centre + tx) - a1 * (centre + ty)
    b2 = centre - b0 * (centre + tx) - b1 * (centre + ty)
    zeros = tf.zeros_like(angle)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1),
        output_shape=tf.constant([28, 28]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


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


def render_card(meta: dict[str, Any]) -> str:
    conf = meta["test"]["confusion_matrix"]
    table = ["| true \\ predicted | " + " | ".join(str(i) for i in range(10)) + " |",
             "|---" * 11 + "|"]
    table += [f"| **{t}** | " + " | ".join(str(n) for n in row) + " |" for t, row in enumerate(conf)]
    sums = "\n".join(f"    {s}  {name}" for name, s in meta["data"]["sha256"].items())
    arch = "\n".join(f"    {line}" for line in meta["architecture"])
    notes = "".join(f"- {n}\n" for n in meta.get("notes", []))
    notes = f"## Caveats\n\n{notes}\n" if notes else ""
    t = meta["training"]
    aug = t["augmentation"]
    aug_text = (
        f"random rotation ±{aug['rotation_degrees']:g}°, zoom ±{aug['zoom'] * 100:g}%, "
        f"shift ±{aug['shift'] * 100:g}% (tf.data input pipeline only; not in the exported model)"
        if aug else "none"
    )
    return f"""# Model card: digits recognizer `{meta['version']}`

Generated by `services/recognizer/train.py` from `model.json`; do not edit by hand.

## What it is

A small convolutional network (Keras {meta['keras_version']}, exported as a TensorFlow
{meta['tensorflow_version']} SavedModel) that classifies a 28×28 grayscale image of a single handwritten
digit into 0–9. It was trained on the 60,000 MNIST training images and evaluated
once on the 10,000 MNIST test images.

- **Version:** `{meta['version']}` (first 12 hex digits of SHA-256 over the SavedModel's files)
- **Test accuracy:** {meta['test']['accuracy'] * 100:.2f}% ({meta['test']['errors']} errors in {meta['test']['total']})
- **Parameters:** {meta['parameters']:,}
- **SavedModel size:** {meta['saved_model_bytes'] / 1e6:.2f} MB (Keras {meta['keras_version']} `model.export` stores
  each weight twice, keras-team/keras#23553, so this is about 2× the {meta['parameters'] * 4 / 1e6:.2f} MB of float32 weights)
- **Served as:** `model.tflite` ({meta['tflite']['bytes'] / 1e6:.2f} MB, LiteRT, float32, no quantisation; its
  outputs differ from the SavedModel's by at most {meta['tflite']['max_difference_from_saved_model']:.1g})
- **Batch-1 latency:** {meta['latency_ms_batch1']:.3f} ms (median of 200 LiteRT calls after warm-up, one thread,
  on the training machine: {meta['machine']}, shared with other workloads)

## Intended use and limits

Intended for recognising MNIST-style digits: one digit, light ink (1.0) on a dark background
(0.0), size-normalised to fit a 20×20 box and centred by centre of mass in a 28×28 field.
Accuracy on MNIST test says little about other inputs: photos or drawings of digits are only
recognised well if preprocessing makes them look like MNIST (invert dark-on-light, crop,
scale, centre). Out-of-distribution inputs (letters, several digits, blank images) still get a
confident-looking probability vector; the model has no "not a digit" class. MNIST handwriting
comes from US Census Bureau employees and US high-school students, so other writing styles
may do worse. Not for any decision that matters without human review.

## Interface

The service runs `model.tflite` in the LiteRT interpreter (`ai-edge-litert`; no TensorFlow at
serving time): input float32 `[N, 28, 28, 1]`, values in [0, 1]; output float32 softmax
probabilities `[N, 10]`. The SavedModel it is converted from (`python -m services.recognizer.export`)
is the same function: `tf.saved_model.load("saved_model").serve(x)`; its `serving_default`
signature takes the keyword input `{meta['input']['name']}` and returns
`{{"{meta['output']['signature_key']}": probabilities}}`.

## Architecture

{arch}

Training:

- Adam, sparse categorical cross-entropy, batch {t['batch_size']}, {t['epochs']} epochs
- learning rate: {t['lr_schedule']}
- augmentation: {aug_text}
- {t['train_examples']:,} training examples, {t['validation_examples']:,} held out for validation
- seed {t['seed']}, TensorFlow op determinism {'on' if t['op_determinism'] else 'off'}

## Test results (10,000 MNIST test images)

Accuracy {meta['test']['accuracy'] * 100:.2f}%. Confusion matrix (rows: true digit, columns: predicted):

{chr(10).join(table)}

{notes}## Reproducing

    {t['command']}

Training took {t['seconds']:.0f} s ({t['seconds_per_epoch']:.0f} s per epoch) on {meta['machine']}.
Results are seeded and op determinism is enabled, but bit-identical weights across machines,
CPU instruction sets or TensorFlow versions are not guaranteed.

## Data

MNIST (Yann LeCun, Corinna Cortes, Christopher J.C. Burges), licensed under Creative Commons
Attribution-Share Alike 3.0 (CC BY-SA 3.0). SHA-256 of the files used:

{sums}
"""


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
    p.add_argument("--val-split", type=float, default=0.0,
                   help="fraction of train held out for monitoring (default 0: train on all 60k)")
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
    order = np.random.default_rng(args.seed).permutation(len(data.x_train))
    n_val = int(round(len(order) * args.val_split))
    train_idx, val_idx = order[n_val:], order[:n_val]
    steps_per_epoch = math.ceil(len(train_idx) / args.batch_size)
    train_ds = train_dataset(data.x_train[train_idx], data.y_train[train_idx], args.batch_size,
                             args.epochs, args.seed, args.augment)
    val_ds = (tf.data.Dataset.from_tensor_slices(
                  (mnist.to_model_input(data.x_train[val_idx]), data.y_train[val_idx].astype(np.int32))
              ).batch(1000) if n_val else None)

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
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.summary()

    start = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, steps_per_epoch=steps_per_epoch,
              verbose=2)
    seconds = time.perf_counter() - start

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        staged = Path(tmp) / "saved_model"
        model.export(str(staged), format="tf_saved_model", verbose=False)
        version = content_hash(staged)[:VERSION_HEX_DIGITS]
        size = tree_size(staged)
        # Score the converted artefact, not the in-memory Keras model: it is what gets served.
        flatbuffer, tflite = export.checked(staged)
        served = Interpreter(flatbuffer)
        result = evaluate.evaluate(served, data.x_test, data.y_test)
        latency = evaluate.latency_ms(served, data.x_test[0])
        loaded = tf.saved_model.load(str(staged))
        signature = loaded.signatures["serving_default"]
        (input_name, input_spec), = signature.structured_input_signature[1].items()
        (output_key, _), = signature.structured_outputs.items()
        shutil.rmtree(out / "saved_model", ignore_errors=True)
        staged.rename(out / "saved_model")
        (out / TFLITE_FILE).write_bytes(flatbuffer)

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
        "output": {"signature_key": output_key, "shape": [None, 10], "dtype": "float32",
                   "meaning": "softmax probabilities for digits 0-9"},
        "test": {"accuracy": result.accuracy, "errors": result.errors, "total": result.total,
                 "confusion_matrix": result.confusion},
        "training": {
            "command": command,
            "arch": args.arch,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "lr_schedule": f"linear warm-up {args.lr / WARMUP_DIVISOR:g} -> {args.lr:g} over {warmup} steps, "
                           f"then cosine decay to {args.lr * FINAL_LR_FRACTION:g} over {steps - warmup} steps",
            "augmentation": ({"rotation_degrees": ROTATION_DEGREES, "zoom": ZOOM, "shift": SHIFT}
                             if args.augment else None),
            "op_determinism": args.determinism,
            "train_examples": len(train_idx),
            "validation_examples": n_val,
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
    (out / "MODEL_CARD.md").write_text(render_card(meta))
    print(f"exported {version}: test accuracy {result.accuracy:.4f}, {meta['parameters']} params, "
          f"{size / 1e6:.2f} MB, batch-1 latency {latency:.3f} ms, training {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
