"""Benchmark the default run of ``python hw/code/assignment.py --cvae``.

Each run is a fresh child process that does what the command does (same
defaults, same code), then measures, in the same process:

- the final average training loss per image and the wall time (``training time`` counts the
  calls of ``train_vae`` only; the run also measures the loss on 2,000 test images after each
  epoch, which the process wall time includes);
- the conditional accuracy: 100 samples per digit, ``z ~ N(0, I)`` decoded
  with that digit's label, scored by the autograder's classifier;
- peak memory (the process's maximum RSS) and training throughput (images/s);
- the achieved GFLOP/s of the train step (matmul FLOPs of forward and backward,
  over the epochs after the first, which includes compilation) against the
  GFLOP/s of a large float32 matmul in TensorFlow;
- where a step's time goes: the compiled step alone on one fixed batch, its
  forward and backward pass without the update, the Adam update alone, and
  the rate of a matmul of the first layer's shape, the best any step could do.

Usage::

    python bench/bench_train.py [--runs 3] [--json results.json] [--label_scale S] [-- assignment.py flags]

Prints one line per run and the medians.
"""

from __future__ import annotations

import time

SCRIPT_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_DIR / "hw" / "code"), str(REPO_DIR)]

TRAIN_IMAGES = 60_000


def dense_kernels(model) -> list:
    """The weight matrices of ``model``'s Dense layers, the encoder's first layer first."""
    return [v for v in model.trainable_variables if len(v.shape) == 2]


def dense_matmul_flops_per_image(model) -> float:
    """Matmul FLOPs of one forward and backward pass of one image through ``model``'s Dense layers.

    Forward: 2·in·out per layer. Backward: 2·in·out for the weight gradient and
    2·in·out for the input gradient, except for the layer that reads the
    images, whose input gradient is never needed.
    """
    kernels = dense_kernels(model)
    macs = [int(v.shape[0]) * int(v.shape[1]) for v in kernels]
    first_layer = macs[0] if macs else 0  # the encoder's first layer reads the images
    return 6.0 * sum(macs) - 2.0 * first_layer


def matmul_gflops(size: int = 2048, repeats: int = 20) -> float:
    """Median GFLOP/s of a (size x size) @ (size x size) float32 matmul in TensorFlow."""
    import tensorflow as tf

    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def layer_matmul_gflops(batch_size: int, fan_in: int, fan_out: int,
                        per_call: int = 20, repeats: int = 20) -> float:
    """GFLOP/s of (batch_size x fan_in) @ (fan_in x fan_out) matmuls, ``per_call`` per XLA-compiled call.

    Given the first layer's shape, this is the rate the train step's largest
    matmul can reach at this batch size.
    """
    import tensorflow as tf

    x = tf.random.normal((batch_size, fan_in))
    w = tf.random.normal((fan_in, fan_out))

    @tf.function(jit_compile=True)
    def matmuls(x, w):
        # Each product reads a different input, so XLA cannot merge them.
        return tf.add_n([tf.reduce_sum(tf.matmul(x + float(i), w)) for i in range(per_call)])

    matmuls(x, w).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmuls(x, w).numpy()
        rates.append(2 * batch_size * fan_in * fan_out * per_call / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def step_breakdown(model, batch_size: int, steps: int = 100, repeats: int = 5) -> dict:
    """Milliseconds per call of the compiled train step and of its two parts, on one fixed batch.

    ``step``: forward, backward and Adam update, as the reference ``train_vae``
    compiles it; ``forward_backward``: the same without the update;
    ``update``: the Adam update alone, with fixed gradients. The input pipeline
    and the Python loop are left out, so ``step`` is the best an epoch can do.
    Runs after the accuracy is measured, because it moves the weights.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from assignment import one_hot
    from vae import loss_function

    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((batch_size, 1, 28, 28), dtype=np.float32))
    labels = one_hot(tf.constant(rng.integers(0, 10, batch_size)), 10)
    variables = model.trainable_variables
    optimizer = keras.optimizers.Adam(1e-4)
    fixed_gradients = [tf.fill(v.shape, 1e-6) for v in variables]

    def forward_backward_pass():
        with tf.GradientTape() as tape:
            x_hat, mu, logvar = model(images, labels, training=True)
            loss = loss_function(x_hat, images, mu, logvar)
        return loss, tape.gradient(loss, variables)

    @tf.function(jit_compile=True)
    def step():
        loss, gradients = forward_backward_pass()
        optimizer.apply_gradients(zip(gradients, variables))
        return loss

    @tf.function(jit_compile=True)
    def forward_backward():
        loss, gradients = forward_backward_pass()
        # Reduce every gradient so that none of the backward pass is pruned.
        return loss + tf.add_n([tf.reduce_sum(g) for g in gradients])

    @tf.function(jit_compile=True)
    def update():
        optimizer.apply_gradients(zip(fixed_gradients, variables))
        return tf.constant(0.0)

    def milliseconds(fn) -> float:
        fn().numpy()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                out = fn()
            out.numpy()
            times.append((time.perf_counter() - start) / steps * 1e3)
        return statistics.median(times)

    return {name: milliseconds(fn) for name, fn in
            [("step", step), ("forward_backward", forward_backward), ("update", update)]}


def conditional_accuracy(model, latent_size: int, per_class: int = 100, seed: int = 1234):
    """Share of ``per_class`` samples per digit that the classifier assigns to the requested digit."""
    import numpy as np

    from autograder.scoring.classifier import load_classifier, predict_digits
    from figures import conditional_samples

    images = conditional_samples(model, latent_size, per_class=per_class, seed=seed)
    predicted = predict_digits(load_classifier(), images).argmax(axis=1)
    requested = np.repeat(np.arange(10), per_class)
    per_digit = [float(np.mean(predicted[requested == d] == d)) for d in range(10)]
    return float(np.mean(predicted == requested)), per_digit


def child(extra_flags: list[str], label_scale: float | None) -> dict:
    """One benchmark run in this process: the default CVAE training, then the measurements."""
    import assignment
    import training
    import vae

    if label_scale is not None:
        vae.LABEL_SCALE = label_scale

    with tempfile.TemporaryDirectory() as outputs:
        args = assignment.parseArguments(["--cvae", "--outputs_dir", outputs, *extra_flags])
        run_start = time.perf_counter()
        history = training.run(args, assignment.train_vae, assignment.load_arrays, assignment.load_mnist,
                               log=lambda _: None)
        run_end = time.perf_counter()
        config = training.TrainConfig.from_namespace(args)
        model = training.build_model(config)
        model.load_weights(training.weights_path(config))
    accuracy, per_digit = conditional_accuracy(model, config.latent_size)
    train_seconds = sum(record.seconds for record in history)
    steady_seconds = sum(record.seconds for record in history[1:]) or train_seconds
    steady_epochs = max(len(history) - 1, 1)
    flops_per_image = dense_matmul_flops_per_image(model)
    step_gflops = flops_per_image * TRAIN_IMAGES * steady_epochs / steady_seconds / 1e9
    peak_matmul = matmul_gflops()
    breakdown = step_breakdown(model, config.batch_size)
    layer_matmul = layer_matmul_gflops(config.batch_size, *dense_kernels(model)[0].shape)
    flops_per_batch = flops_per_image * config.batch_size
    return {
        "flags": ["--cvae", *extra_flags],
        "label_scale": vae.LABEL_SCALE,
        "final_loss": history[-1].loss,
        "conditional_accuracy": accuracy,
        "per_digit_accuracy": per_digit,
        "train_seconds": train_seconds,
        "run_wall_seconds": run_end - run_start,
        "process_wall_seconds": run_end - SCRIPT_START,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "images_per_second": TRAIN_IMAGES * len(history) / train_seconds,
        "train_step_gflops": step_gflops,
        "matmul_gflops": peak_matmul,
        "step_to_matmul_ratio": step_gflops / peak_matmul,
        "step_ms": breakdown["step"],
        "forward_backward_ms": breakdown["forward_backward"],
        "update_ms": breakdown["update"],
        "isolated_step_gflops": flops_per_batch / breakdown["step"] / 1e6,
        "isolated_step_to_matmul_ratio": flops_per_batch / breakdown["step"] / 1e6 / peak_matmul,
        "forward_backward_to_matmul_ratio":
            flops_per_batch / breakdown["forward_backward"] / 1e6 / peak_matmul,
        "layer_matmul_gflops": layer_matmul,
        "layer_matmul_to_matmul_ratio": layer_matmul / peak_matmul,
    }


SUMMARY_KEYS = [
    ("final_loss", "final train loss (nats/image)", "{:.2f}"),
    ("conditional_accuracy", "conditional accuracy", "{:.1%}"),
    ("process_wall_seconds", "wall, process start to end of run (s)", "{:.1f}"),
    ("train_seconds", "training time (s)", "{:.1f}"),
    ("peak_rss_mib", "peak RSS (MiB)", "{:.0f}"),
    ("images_per_second", "throughput (images/s)", "{:.0f}"),
    ("train_step_gflops", "train step (GFLOP/s)", "{:.1f}"),
    ("matmul_gflops", "2048x2048 matmul (GFLOP/s)", "{:.1f}"),
    ("step_to_matmul_ratio", "train step / matmul", "{:.0%}"),
    ("step_ms", "isolated step, one batch (ms)", "{:.2f}"),
    ("forward_backward_ms", "  forward + backward only (ms)", "{:.2f}"),
    ("update_ms", "  Adam update only (ms)", "{:.2f}"),
    ("isolated_step_to_matmul_ratio", "isolated step / matmul", "{:.0%}"),
    ("forward_backward_to_matmul_ratio", "forward + backward / matmul", "{:.0%}"),
    ("layer_matmul_gflops", "first-layer-shaped matmul, XLA (GFLOP/s)", "{:.1f}"),
    ("layer_matmul_to_matmul_ratio", "first-layer-shaped matmul / matmul", "{:.0%}"),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the default CVAE run.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write every run's measurements here")
    parser.add_argument("--label_scale", type=float, default=None,
                        help="override vae.LABEL_SCALE (1 turns LabelScale off), for the ablation")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("flags", nargs="*", help="extra assignment.py flags (after --)")
    args = parser.parse_args(argv)
    if args.child:
        print("BENCH " + json.dumps(child(args.flags, args.label_scale)), flush=True)
        return 0

    runs = []
    for index in range(args.runs):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        result = subprocess.run(
            [sys.executable, __file__, "--child",
             *(["--label_scale", str(args.label_scale)] if args.label_scale is not None else []),
             "--", *args.flags],
            capture_output=True, text=True, env=env,
        )
        lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH ")]
        if result.returncode != 0 or not lines:
            print(result.stdout[-2000:], result.stderr[-4000:], file=sys.stderr)
            return 1
        run = json.loads(lines[-1][len("BENCH "):])
        runs.append(run)
        print(f"run {index + 1}: " + ", ".join(
            f"{label} {fmt.format(run[key])}" for key, label, fmt in SUMMARY_KEYS), flush=True)

    print(f"\nmedian of {len(runs)} runs ({' '.join(runs[0]['flags'])}, label scale {runs[0]['label_scale']:g}):")
    for key, label, fmt in SUMMARY_KEYS:
        print(f"  {label:<40} {fmt.format(statistics.median(run[key] for run in runs))}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
