"""Runs inside the sandboxed child: calls the submission's code and saves the raw arrays.

This file is copied next to the submission and started as::

    python -I harness.py TASK REQUEST.npz RESULT.npz

It never scores anything: it only calls the student's functions on the
grader's inputs and writes what came back (as plain float arrays) and any
error messages. The grader checks every value itself. It depends on nothing
of the grader but this file.
"""

import os
import sys
import time
import traceback

import numpy as np

# When this process started: the training budget counts from here.
STARTED = time.monotonic()
# Where the trained models are exported for the grader (set from the result path in ``main``).
MODELS_DIR = "models"
# What a training child needs before its first epoch (TensorFlow, the data, the model), with margin.
NEXT_CHILD_SECONDS = 30.0
MAX_ERROR_CHARS = 1500
INPUT_SIZE = 28 * 28
NUM_CLASSES = 10
# The students' self-check runs a copy of this file made by the release tool, without the parts between
# "BEGIN GRADER ONLY" and "END GRADER ONLY": those hold the grader's own formulas (the loss, the codes it
# decodes), its training and its export, none of which may reach students.
GRADER_COPY = False
# BEGIN GRADER ONLY
GRADER_COPY = True
# END GRADER ONLY


def as_plain_array(value, name):
    """Copy ``value`` into a plain float64 ndarray (not a subclass, no custom methods)."""
    if hasattr(value, "numpy") and callable(value.numpy):
        value = value.numpy()
    array = np.array(value, dtype=np.float64, copy=True, subok=False)
    if type(array) is not np.ndarray:
        raise TypeError(f"{name} is not an array")
    return array


def describe_error(error):
    """The exception's last line and the submission's frames, kept short for the feedback."""
    frames = [
        f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(error.__traceback__)
        # Python's own frozen modules (the import system) have names like "<frozen importlib._bootstrap>".
        if not frame.filename.startswith("<")
        and os.path.basename(frame.filename) != os.path.basename(__file__)
        and os.path.dirname(os.path.abspath(frame.filename)) == os.getcwd()
    ]
    message = "".join(traceback.format_exception_only(type(error), error)).strip()
    where = f" (at {' <- '.join(reversed(frames[-3:]))})" if frames else ""
    return (message + where)[:MAX_ERROR_CHARS]


class Probe:
    """Collects the arrays and errors of every step into one result file, saved after each step.

    Saving as it goes means that a step that hangs or ends the process still
    leaves the earlier steps' results, and the ``started.``/``done.`` markers
    tell the grader which step did not finish.
    """

    def __init__(self, path):
        self.path = path
        self.arrays = {}

    def step(self, name, function, *args):
        """Run one step; returns its value, or None when it raised (the error is recorded)."""
        self.arrays[f"started.{name}"] = np.array(1)
        self.save()
        value = None
        try:
            value = function(*args)
        except BaseException as error:  # noqa: BLE001 - any failure of student code is reported
            if isinstance(error, KeyboardInterrupt):
                raise
            self.arrays[f"{name}.error"] = np.array(describe_error(error))
        self.arrays[f"done.{name}"] = np.array(1)
        self.save()
        return value

    def run(self, name, function, *args):
        """Run a probe whose result is a dict of arrays, stored under ``name.``."""
        result = self.step(name, function, *args)
        for key, value in (result or {}).items():
            try:
                self.arrays[f"{name}.{key}"] = np.array(value[:MAX_ERROR_CHARS]) if isinstance(value, str) \
                    else as_plain_array(value, key)
            except BaseException as error:  # noqa: BLE001
                self.arrays[f"{name}.error"] = np.array(describe_error(error))
        self.save()

    def publish(self, name, arrays):
        """Store a step's arrays so far under ``name.`` and save them (the step goes on)."""
        for key, value in arrays.items():
            self.arrays[f"{name}.{key}"] = as_plain_array(value, key)
        self.save()

    def save(self):
        temporary = self.path + ".partial"
        with open(temporary, "wb") as file:
            np.savez(file, **self.arrays)
        os.replace(temporary, self.path)


def seed_everything(seed):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()


def grader_args(request, is_cvae):
    """The argparse.Namespace that ``train_vae`` receives, with every usual option set."""
    import argparse

    latent = int(request["cvae_latent_size" if is_cvae else "vae_latent_size"])
    return argparse.Namespace(
        cvae=is_cvae, is_cvae=is_cvae, batch_size=int(request["batch_size"]),
        num_epochs=int(request["cvae_epochs" if is_cvae else "vae_epochs"]),
        latent_size=latent, learning_rate=float(request["learning_rate"]),
        load_weights=False, device="cpu", data_dir=None, outputs_dir=os.path.abspath("outputs"),
        seed=int(request["seed"]),
    )


def build_model(vae_module, is_cvae, latent_size, learning_rate, decay_steps=0):
    """The student's model with ``model.optimizer`` set, as the contract says the caller does.

    With ``decay_steps``, Adam's learning rate follows a cosine decay over that
    many steps, which lowers the loss reached in a short budget.
    """
    import keras

    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps, alpha=0.05)

    if is_cvae:
        model = vae_module.CVAE(INPUT_SIZE, num_classes=NUM_CLASSES, latent_size=latent_size)
    else:
        model = vae_module.VAE(INPUT_SIZE, latent_size=latent_size)
    model.optimizer = keras.optimizers.Adam(learning_rate)
    return model


def make_loader(images, labels, batch_size, seed):
    """tf.data.Dataset of (B, 1, 28, 28) float32 images in [0, 1] and (B,) int64 labels.

    The same pipeline as the stencil's ``mnist_data.make_dataset``, written
    here again because the harness must not depend on a module the submission
    may replace. Shuffling indices and gathering whole batches keeps memory
    low: a shuffle buffer of 60,000 image tensors would cost hundreds of MB.
    """
    import tensorflow as tf

    images = tf.constant(images[:, None])
    labels = tf.constant(labels.astype(np.int64))
    order = tf.data.Dataset.range(int(labels.shape[0]))
    order = order.shuffle(int(labels.shape[0]), seed=int(seed), reshuffle_each_iteration=True)

    def gather(index):
        return tf.cast(tf.gather(images, index), tf.float32) / 255.0, tf.gather(labels, index)

    return order.batch(int(batch_size)).map(gather).prefetch(2)


def as_images(value, name):
    """``value`` as (N, 1, 28, 28) float64; (N, 784) or (N, 28, 28) decoder outputs are reshaped.

    A decoder that returns flat images is a slip the forward checks report;
    reshaping here keeps it from also failing the checks that only need the
    pixels. ``(array, original shape)`` is returned so the grader can say so.
    """
    array = as_plain_array(value, name)
    shape = array.shape
    if array.ndim >= 2 and int(np.prod(shape[1:])) == INPUT_SIZE and shape[1:] != (1, 28, 28):
        array = array.reshape(len(array), 1, 28, 28)
    return array, np.array(shape, dtype=np.float64)


def decode_with_labels(model, z, labels):
    """The CVAE's decoder on ``concat([z, one_hot(labels)])``; z: (N, Z), labels: (N,) integers."""
    import tensorflow as tf

    codes = tf.constant(np.asarray(z, dtype=np.float32))
    return model.decoder(tf.concat([codes, tf.one_hot(np.asarray(labels, dtype=np.int64), NUM_CLASSES)], axis=-1))


# BEGIN GRADER ONLY
# Rows per call of an exported function: a static batch size lets code that reads
# static shapes (``mu.shape``, ``x.shape[0]``) trace; the grader pads its inputs to it.
EXPORT_BATCH = 256


def export_model(model, is_cvae, latent_size, path):
    """Save the model as a SavedModel of two fixed-signature graph functions, for the grader to run.

    ``encode(x: (B, 1, 28, 28)[, c: (B, 10)]) -> mu, logvar: (B, Z)`` goes
    through ``model(x[, c])``; ``decode(z: (B, Z[+10])) -> x_hat: (B, 1, 28, 28)``
    through ``model.decoder``. The grader scores the trained model only by
    running these graphs, in a process that never imports the submission, on
    inputs this process never sees. The graphs are traced once per model (the
    variables' current values are saved each time); the folder is written next
    to ``path`` and renamed into place, so ``path`` always holds one whole model.
    """
    import shutil

    import tensorflow as tf

    if id(model) not in EXPORTS:
        EXPORTS[id(model)] = (model, traced_functions(model, is_cvae, latent_size))
    module = EXPORTS[id(model)][1]
    partial = f"{path}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    tf.saved_model.save(module, partial, signatures={"encode": module.encode_graph, "decode": module.decode_graph})
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.replace(partial, path)


# Model id -> (the model, kept alive so that its id stays its own; the tf.Module of its traced graphs).
EXPORTS = {}


def traced_functions(model, is_cvae, latent_size):
    """A tf.Module holding the model's two traced graph functions and the variables they read."""
    import tensorflow as tf

    images = tf.TensorSpec([EXPORT_BATCH, 1, 28, 28], tf.float32, name="x")
    labels = tf.TensorSpec([EXPORT_BATCH, NUM_CLASSES], tf.float32, name="c")
    codes = tf.TensorSpec([EXPORT_BATCH, latent_size + (NUM_CLASSES if is_cvae else 0)], tf.float32, name="z")

    def codes_of(outputs):
        _, mu, logvar = outputs
        return {"mu": tf.reshape(tf.cast(mu, tf.float32), [EXPORT_BATCH, -1]),
                "logvar": tf.reshape(tf.cast(logvar, tf.float32), [EXPORT_BATCH, -1])}

    if is_cvae:
        encode = tf.function(lambda x, c: codes_of(model(x, c)), input_signature=[images, labels])
    else:
        encode = tf.function(lambda x: codes_of(model(x)), input_signature=[images])
    decode = tf.function(lambda z: {"x_hat": tf.reshape(tf.cast(model.decoder(z), tf.float32),
                                                        [EXPORT_BATCH, 1, 28, 28])}, input_signature=[codes])
    module = tf.Module()
    module.encode_graph = encode.get_concrete_function()
    module.decode_graph = decode.get_concrete_function()
    # The variables the traced graphs read, whoever owns them (a layer, a Keras seed generator).
    module.captured = [v for f in (module.encode_graph, module.decode_graph) for v in f.variables]
    module.encode, module.decode = encode, decode
    return module


def negative_elbo(x_hat, images, mu, logvar):
    """The negative ELBO per image, in NumPy, to decide when to stop training.

    The grader scores the same arrays with its own copy of this formula; this
    one only decides whether another epoch is needed.
    """
    x = images.astype(np.float64)[:, None] / 255.0
    x_hat = np.clip(x_hat, 1e-7, 1 - 1e-7)
    bce = -np.sum(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat))
    kl = -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar))
    return float((bce + kl) / len(images))


def encode_decode(model, is_cvae, images, labels, eps):
    """``mu``, ``logvar`` from ``model(x)``, and the decoding of the grader's ``z = mu + sigma * eps``.

    images: (N, 28, 28) uint8; eps: (N, Z). Returns arrays the grader turns into a loss.
    """
    import tensorflow as tf

    x = tf.constant(images.astype(np.float32)[:, None] / 255.0)
    if is_cvae:
        c = tf.one_hot(labels.astype(np.int64), NUM_CLASSES)
        _, mu, logvar = model(x, c)
    else:
        _, mu, logvar = model(x)
    mu = as_plain_array(mu, "mu")
    logvar = as_plain_array(logvar, "logvar")
    z = mu + np.exp(0.5 * np.clip(logvar, -30.0, 30.0)) * eps
    decoded = decode_with_labels(model, z, labels) if is_cvae else model.decoder(tf.constant(z.astype(np.float32)))
    x_hat, decoded_shape = as_images(decoded, "the decoder's output")
    return {"mu": mu, "logvar": logvar, "x_hat": x_hat, "decoded_shape": decoded_shape}
# END GRADER ONLY


def optimizer_steps(model):
    """How many steps ``model.optimizer`` has taken (None when it has no step counter)."""
    try:
        return int(as_plain_array(model.optimizer.iterations, "iterations"))
    except Exception:  # noqa: BLE001 - a replaced or missing optimizer is reported, not fatal
        return None


def counting_steps(model, function, *args):
    """``function(*args)`` and the steps ``model.optimizer`` took meanwhile (-1.0 when they cannot be counted)."""
    before = optimizer_steps(model)
    value = function(*args)
    after = optimizer_steps(model)
    return value, (-1.0 if before is None or after is None else float(after - before))


# The unit probes: each calls one contract function on the grader's inputs.


def call_with_tensors(function, *arrays):
    """``function`` called on tensors, as in training; on NumPy arrays when tensors raise.

    The training loop hands the student's code tensors, so code written for
    them (``labels.numpy()``, ``x.shape[0]``) is correct; code written for
    NumPy is correct too. The first error is the one reported.
    """
    import tensorflow as tf

    try:
        return function(*(tf.constant(a) for a in arrays))
    except Exception as error:  # noqa: BLE001 - retried once with NumPy, else the first error stands
        try:
            return function(*arrays)
        except Exception:  # noqa: BLE001
            raise error from None


def probe_one_hot(assignment, request):
    labels = request["one_hot.labels"].astype(np.int64)
    return {"output": call_with_tensors(lambda c: assignment.one_hot(c, NUM_CLASSES), labels)}


def probe_reparametrize(vae, request):
    import tensorflow as tf

    mu = tf.constant(request["reparam.mu"].astype(np.float32))
    logvar = tf.constant(request["reparam.logvar"].astype(np.float32))
    first = vae.reparametrize(mu, logvar)
    second = vae.reparametrize(mu, logvar)
    return {"first": first, "second": second}


def probe_reparametrize_gradient(vae, request):
    import tensorflow as tf

    mu = tf.Variable(request["grad.mu"].astype(np.float32))
    logvar = tf.Variable(request["grad.logvar"].astype(np.float32))
    weights = tf.constant(request["grad.weights"].astype(np.float32))
    with tf.GradientTape() as tape:
        z = vae.reparametrize(mu, logvar)
        objective = tf.reduce_sum(tf.cast(z, tf.float32) * weights)
    grad_mu, grad_logvar = tape.gradient(objective, [mu, logvar])
    # tape.gradient returns None where z does not depend on the variable through TensorFlow operations.
    return {"z": z, "grad_mu": tf.zeros_like(mu) if grad_mu is None else grad_mu,
            "grad_logvar": tf.zeros_like(logvar) if grad_logvar is None else grad_logvar,
            "missing_mu": float(grad_mu is None), "missing_logvar": float(grad_logvar is None)}


def probe_loss_function(vae, request):
    values = []
    for index in range(int(request["loss.count"])):
        batch = [request[f"loss.{index}.{name}"].astype(np.float32)
                 for name in ("x_hat", "x", "mu", "logvar")]
        values.append(as_plain_array(call_with_tensors(vae.loss_function, *batch), "loss").reshape(-1))
    return {"values": np.concatenate(values)}


def probe_vae_forward(vae, request):
    import tensorflow as tf

    latent = int(request["forward.latent_size"])
    model = vae.VAE(INPUT_SIZE, latent_size=latent)
    x_hat, mu, logvar = model(tf.constant(request["forward.x"].astype(np.float32)))
    decoded = model.decoder(tf.constant(request["forward.z"].astype(np.float32)))
    return {"x_hat": x_hat, "mu": mu, "logvar": logvar, "decoded": decoded}


def probe_cvae_forward(vae, request):
    import tensorflow as tf

    latent = int(request["forward.latent_size"])
    model = vae.CVAE(INPUT_SIZE, num_classes=NUM_CLASSES, latent_size=latent)
    x = tf.constant(request["forward.x"].astype(np.float32))
    c = tf.one_hot(request["forward.labels"].astype(np.int64), NUM_CLASSES)
    x_hat, mu, logvar = model(x, c)
    z = request["forward.z"]
    # Every z decoded with every label: (Z rows x 10 labels).
    decoded = decode_with_labels(model, np.repeat(z, NUM_CLASSES, axis=0), np.tile(np.arange(NUM_CLASSES), len(z)))
    return {"x_hat": x_hat, "mu": mu, "logvar": logvar, "decoded": decoded}


# The grader's own reparametrize and loss_function, put in place of the submission's while train_vae is
# probed, so that each contract function is checked alone. Only the grader's copy of this file fills it:
# the students' self-check (made by the release tool) probes train_vae with their own functions.
TRUSTED = {}
# BEGIN GRADER ONLY


def trusted_reparametrize(mu, logvar):
    """The contract's reparametrization, for checking ``train_vae`` alone."""
    import tensorflow as tf

    return mu + tf.exp(0.5 * logvar) * tf.random.normal(tf.shape(mu), dtype=mu.dtype)


def trusted_loss_function(x_hat, x, mu, logvar):
    """The contract's negative ELBO per image, for checking ``train_vae`` alone."""
    import tensorflow as tf

    x_hat = tf.clip_by_value(x_hat, 1e-7, 1.0 - 1e-7)
    x = tf.cast(x, x_hat.dtype)
    bce = -tf.reduce_sum(x * tf.math.log(x_hat) + (1.0 - x) * tf.math.log(1.0 - x_hat))
    kl = -0.5 * tf.reduce_sum(1.0 + logvar - tf.square(mu) - tf.exp(logvar))
    return (bce + kl) / tf.cast(tf.shape(x)[0], bce.dtype)


TRUSTED.update(reparametrize=trusted_reparametrize, loss_function=trusted_loss_function)
# END GRADER ONLY


class LossRecorder:
    """A loss function that also adds up what it returns, in eager code and inside a ``tf.function``.

    ``train_vae`` should return the sum of its batches' losses, which only the
    loss function sees: the check of ``train_vae`` compares the two. The sums
    live in TensorFlow variables, so a step compiled by ``tf.function`` (with or
    without XLA) records too.
    """

    def __init__(self, loss_function):
        import tensorflow as tf

        self.loss_function = loss_function
        self.total = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.calls = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.unrecorded = False

    def __call__(self, *args, **kwargs):
        import tensorflow as tf

        loss = self.loss_function(*args, **kwargs)
        try:
            self.total.assign_add(tf.cast(tf.reduce_sum(loss), tf.float64))
            self.calls.assign_add(1)
        except Exception:  # noqa: BLE001 - a loss the recorder cannot add up is the check's concern, not the step's
            self.unrecorded = True
        return loss

    def reset(self):
        """Start adding up again from zero."""
        self.total.assign(0.0)
        self.calls.assign(0)
        self.unrecorded = False

    def recorded(self):
        """``{"loss_total": (1,), "loss_calls": (1,)}``; empty when some value could not be added up."""
        if self.unrecorded:
            return {}
        return {"loss_total": np.array([float(self.total.numpy())]),
                "loss_calls": np.array([float(self.calls.numpy())])}


def with_trusted_loss(modules, recorder, function, *args):
    """Call ``function`` with the grader's ``reparametrize`` and ``recorder`` as ``loss_function`` in ``modules``.

    A bug in the student's loss would otherwise also fail the check of
    ``train_vae``; each contract function is checked alone. (The self-check has
    no trusted functions: its recorder wraps the student's own loss.)
    """
    replacements = {**TRUSTED, "loss_function": recorder}
    saved = [(module, name, module.__dict__[name]) for module in modules for name in replacements
             if name in module.__dict__]
    for module, name, _ in saved:
        setattr(module, name, replacements[name])
    try:
        return function(*args)
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


# BEGIN GRADER ONLY
def exported(model, is_cvae, latent_size, name):
    """Export the model to ``MODELS_DIR/name``; returns the error's description, or None when it worked."""
    try:
        export_model(model, is_cvae, latent_size, os.path.join(MODELS_DIR, name))
    except Exception as error:  # noqa: BLE001 - a model that cannot be exported is graded, marked unverified
        return describe_error(error)
    return None
# END GRADER ONLY


def own_measurement(model, vae, images, labels=None):
    """``mu``, ``logvar``, ``x_hat`` and the loss of the submission's own ``model(x)`` and ``loss_function``.

    images: (N, 28, 28) uint8; labels: (N,) integers for the CVAE, None for the
    VAE. The self-check's measure of training (the grader computes the loss itself).
    """
    import tensorflow as tf

    x = tf.constant(images.astype(np.float32)[:, None] / 255.0)
    if labels is None:
        x_hat, mu, logvar = model(x)
    else:
        x_hat, mu, logvar = model(x, tf.one_hot(np.asarray(labels, dtype=np.int64), NUM_CLASSES))
    loss = as_plain_array(vae.loss_function(x_hat, x, mu, logvar), "loss_function's value").reshape(-1)[:1]
    images_out, decoded_shape = as_images(x_hat, "x_hat")
    return {"mu": as_plain_array(mu, "mu"), "logvar": as_plain_array(logvar, "logvar"), "x_hat": images_out,
            "decoded_shape": decoded_shape, "loss": loss}


def measure_train_vae(model, vae, images, labels, eps):
    """What the check of ``train_vae`` compares before and after the epoch.

    The grader decodes its own codes ``z = mu + sigma * eps`` and computes the
    loss itself; the self-check takes the loss of the student's own model.
    """
    # BEGIN GRADER ONLY
    if GRADER_COPY:
        return encode_decode(model, False, images, labels, eps)
    # END GRADER ONLY
    return own_measurement(model, vae, images)


def probe_loader(request):
    """The train_vae probe's batches: a new loader over the same images shuffles them in the same orders."""
    return make_loader(request["steps.images"], request["steps.labels"], int(request["steps.batch_size"]),
                       request["seed"])


def copy_of(model, vae, request):
    """A second model of the submission's class with ``model``'s (built) weights and an optimizer of its own."""
    import tensorflow as tf

    twin = build_model(vae, False, request["steps.eps"].shape[1], float(request["steps.learning_rate"]))
    twin(tf.constant(request["steps.eval_images"][:2].astype(np.float32)[:, None] / 255.0))
    twin.set_weights(model.get_weights())
    return twin


def train_vae_calls(vae, assignment, model, request):
    """Call the submission's ``train_vae`` on the request's images ``steps.epochs`` times, one loader.

    Yields after each call ``(returned, grader_steps, recorder)``: what ``train_vae``
    returned, the optimizer steps it took (-1.0 when they cannot be counted), and the
    recorder of what ``loss_function`` returned during that call. The probe judges the
    last call; the instructors' ``bench/bench_train_vae_probe.py`` measures the model after each.
    """
    latent_size = request["steps.eps"].shape[1]
    batch_size = int(request["steps.batch_size"])
    loader = probe_loader(request)
    args = grader_args({"vae_latent_size": latent_size, "cvae_latent_size": latent_size,
                        "batch_size": batch_size, "vae_epochs": 1, "cvae_epochs": 1,
                        "learning_rate": request["steps.learning_rate"], "seed": request["seed"]}, False)
    # One recorder for all calls, since a step compiled in the first keeps the variables it captured.
    recorder = LossRecorder(TRUSTED.get("loss_function", vae.loss_function))
    for _ in range(int(request["steps.epochs"])):
        recorder.reset()
        returned, steps = counting_steps(model, with_trusted_loss, (vae, assignment), recorder,
                                         assignment.train_vae, model, loader, args, False)
        yield returned, steps, recorder


def train_with_trusted_step(vae, assignment, model, request):
    """What a correct ``train_vae`` does, on the probe's batches: ``steps.epochs`` passes over a loader that
    shuffles as the probe's does, one step of ``model.optimizer`` per batch on the contract's loss.

    Eager, so that any model that runs eagerly trains. The check compares how far ``train_vae``
    lowers the loss with how far this lowers it from the same weights: a network that learns slowly
    in the probe's few steps (a convolutional one, say) is judged against what it can do.
    """
    import tensorflow as tf

    loss_function = TRUSTED.get("loss_function", vae.loss_function)
    loader = probe_loader(request)

    def epochs():
        for _ in range(int(request["steps.epochs"])):
            for images, _labels in loader:
                with tf.GradientTape() as tape:
                    x_hat, mu, logvar = model(images)
                    loss = loss_function(x_hat, images, mu, logvar)
                pairs = [(g, v) for g, v in zip(tape.gradient(loss, model.trainable_variables),
                                                model.trainable_variables) if g is not None]
                model.optimizer.apply_gradients(pairs)

    with_trusted_loss((vae, assignment), loss_function, epochs)


# The copy is trained only when the loss this process sees fell by less than a fifth: the check's fixed
# bar is a tenth, and the grader measures on other images and codes (a spread of a few percent). Skipping
# it can only withhold the comparison's leniency, never grant it.
YARDSTICK_ABOVE = 0.8


def child_loss(measured, images):
    """The loss of a ``measure_train_vae`` result as this process sees it (NaN when it cannot tell)."""
    try:
        # BEGIN GRADER ONLY
        if GRADER_COPY:
            return negative_elbo(measured["x_hat"], images, measured["mu"], measured["logvar"])
        # END GRADER ONLY
        return float(np.asarray(measured["loss"]).reshape(-1)[0])
    except Exception:  # noqa: BLE001 - unusable arrays: the check says so from the grader's side
        return float("nan")


def probe_train_vae(vae, assignment, request):
    """A few epochs of ``train_vae``, with the grader's loss: the grader compares the loss before and after,
    and with the loss of a copy of the model trained by the contract's step (``train_with_trusted_step``).

    The grader's copy exports the models, for its own measurement on images this process never sees.
    """
    eval_images, eval_labels = request["steps.eval_images"], request["steps.eval_labels"]
    eps = request["steps.eps"]
    model = build_model(vae, False, eps.shape[1], float(request["steps.learning_rate"]))
    before = measure_train_vae(model, vae, eval_images, eval_labels, eps)
    export_errors = []
    # BEGIN GRADER ONLY
    export_errors.append(exported(model, False, eps.shape[1], "train_vae.before"))
    # END GRADER ONLY
    try:
        twin = copy_of(model, vae, request)
    except Exception:  # noqa: BLE001 - without a copy, the check judges train_vae by its fixed bar alone
        twin = None
    # The check judges the last call: its return value against what loss_function returned during it.
    *_, (returned, steps, recorder) = train_vae_calls(vae, assignment, model, request)
    after = measure_train_vae(model, vae, eval_images, eval_labels, eps)
    # BEGIN GRADER ONLY
    export_errors.append(exported(model, False, eps.shape[1], "train_vae.after"))
    # END GRADER ONLY
    result = {f"before.{k}": v for k, v in before.items()}
    if any(export_errors):
        result["export_error"] = next(e for e in export_errors if e)
    result.update({f"after.{k}": v for k, v in after.items()})
    if twin is not None and child_loss(after, eval_images) > YARDSTICK_ABOVE * child_loss(before, eval_images):
        try:
            train_with_trusted_step(vae, assignment, twin, request)
            result.update({f"trusted.{k}": v for k, v in measure_train_vae(twin, vae, eval_images, eval_labels,
                                                                            eps).items()})
            # BEGIN GRADER ONLY
            exported(twin, False, eps.shape[1], "train_vae.trusted")
            # END GRADER ONLY
        except Exception:  # noqa: BLE001 - as above: the fixed bar alone
            pass
    result["returned"] = as_plain_array(returned, "train_vae's return value").reshape(-1)[:1]
    result["grader_steps"] = np.array(steps)
    result.update(recorder.recorded())
    return result


# The one registry of unit probes, in the order they run: name -> (the probe, the submission's modules
# it needs). vae.py is imported first, so its probes still run when assignment.py cannot be imported.
# The grader and the self-check take the probes from here; a probe NAME is scored by
# checks.check_NAME, its points are checks.CHECKS' entry NAME, and requests.unit_request draws its
# inputs (checks.unit_checks refuses a probe without a check or points).
PROBES = {
    "reparametrize": (probe_reparametrize, ("vae",)),
    "reparametrize_gradient": (probe_reparametrize_gradient, ("vae",)),
    "loss_function": (probe_loss_function, ("vae",)),
    "vae_forward": (probe_vae_forward, ("vae",)),
    "cvae_forward": (probe_cvae_forward, ("vae",)),
    "one_hot": (probe_one_hot, ("assignment",)),
    "train_vae": (probe_train_vae, ("vae", "assignment")),
}


def import_submission(result, name, modules):
    """Import the submission's module ``name`` once; None when it fails (the error is recorded)."""
    if name not in modules:
        import importlib

        modules[name] = result.step(f"import_{name}", importlib.import_module, name)
    return modules[name]


def run_units(request, result, only=None):
    """Run the unit probes (all, or only one), importing only the modules each needs."""
    modules = {}
    seed_everything(request["seed"])
    for name in PROBES if only is None else (only,):
        probe, needs = PROBES[name]
        needed = [import_submission(result, module, modules) for module in needs]
        if all(module is not None for module in needed):
            result.run(name, probe, *needed, request)


def run_training(request, result, is_cvae, seconds=None, keep_epoch=False):
    """Train the submission's model under the grader's budget, measuring it after every epoch."""
    modules = {}
    vae = import_submission(result, "vae", modules)
    assignment = import_submission(result, "assignment", modules)
    if vae is None or assignment is None:
        return
    seed_everything(request["seed"])
    name = "cvae" if is_cvae else "vae"

    def publish(model, arrays):
        """Save the arrays of the epoch that just ended (and, in the grader, export its model)."""
        # BEGIN GRADER ONLY
        error = exported(model, is_cvae, int(request[f"{name}_latent_size"]), name)
        if error:
            result.arrays[f"{name}.export_error"] = np.array(error)
        else:
            result.arrays.pop(f"{name}.export_error", None)
        # END GRADER ONLY
        result.publish(name, arrays)

    result.run(name, train_and_decode, vae, assignment, request, is_cvae, publish, seconds, keep_epoch)


# BEGIN GRADER ONLY
def grader_decision(epoch, timeout):
    """Whether the grader wants another epoch ("go") or none ("stop"), from its file ``decision-EPOCH``.

    The grader scores the CVAE's samples itself (the classifier never enters
    this process) and answers within seconds; without an answer, training
    goes on.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"decision-{epoch}") as file:
                return file.read().strip()
        except OSError:
            time.sleep(0.1)
    return "go"


def evaluate(model, request, is_cvae):
    """The arrays the grader scores: the encodings and decodings of the grader's images and codes."""
    prefix = "cvae" if is_cvae else "vae"
    outputs = encode_decode(model, is_cvae, request["eval.images"], request["eval.labels"],
                            request[f"{prefix}.eps"])
    if is_cvae:
        z = request["cvae.sample_z"]
        outputs["samples"], _ = as_images(decode_with_labels(model, z, request["cvae.sample_labels"]), "samples")
        # The first ten codes, each decoded with every label: how much the label changes the image.
        sweep = decode_with_labels(model, np.repeat(z[:NUM_CLASSES], NUM_CLASSES, axis=0),
                                   np.tile(np.arange(NUM_CLASSES), NUM_CLASSES))
        outputs["label_sweep"], _ = as_images(sweep, "the label sweep")
    return outputs
# END GRADER ONLY


def epoch_outputs(model, vae, request, is_cvae):
    """What is measured after an epoch, and the VAE's loss that decides whether to stop (NaN for the CVAE).

    The grader decodes its own codes and computes the loss itself; the
    self-check measures the student's own ``model(x)`` with their ``loss_function``.
    The CVAE's bar is the classifier's, which only the grader has.
    """
    # BEGIN GRADER ONLY
    if GRADER_COPY:
        outputs = evaluate(model, request, is_cvae)
        metric = float("nan") if is_cvae else negative_elbo(outputs["x_hat"], request["eval.images"],
                                                            outputs["mu"], outputs["logvar"])
        return outputs, metric
    # END GRADER ONLY
    outputs = own_measurement(model, vae, request["eval.images"], request["eval.labels"] if is_cvae else None)
    if is_cvae:
        samples = decode_with_labels(model, request["cvae.sample_z"], request["cvae.sample_labels"])
        outputs["samples"], _ = as_images(samples, "samples")
    return outputs, float("nan") if is_cvae else float(outputs["loss"][0])


def train_and_decode(vae, assignment, request, is_cvae, publish=None, seconds=None, keep_epoch=False):
    """Train epoch by epoch until the model meets the bar, the epoch cap or the time budget.

    After every epoch the model is evaluated on the grader's inputs and the
    arrays are published (saved), so that a run stopped by its time limit
    still leaves the model of its last finished epoch. ``seconds`` is the
    training budget, counted from the start of this process: no epoch starts
    that the last one's duration says would not end within it; with
    ``keep_epoch``, not unless one more epoch as long and the next child's
    start-up would still fit after it (the CVAE trains after the VAE).
    """
    prefix = "cvae" if is_cvae else "vae"
    latent = int(request[f"{prefix}_latent_size"])
    max_epochs = int(request[f"{prefix}_epochs"])
    batches = -(-len(request["train.labels"]) // int(request["batch_size"]))
    model = build_model(vae, is_cvae, latent, float(request["learning_rate"]), max_epochs * batches)
    loader = make_loader(request["train.images"], request["train.labels"],
                         request["batch_size"], request["seed"])
    args = grader_args(request, is_cvae)
    history = {"returned": [], "metric": [], "epoch_seconds": [], "grader_steps": []}
    outputs = {}
    for _ in range(max_epochs):
        epoch_started = time.monotonic()
        total, steps = counting_steps(model, assignment.train_vae, model, loader, args, is_cvae)
        history["returned"].append(float(as_plain_array(total, "train_vae's return value").reshape(-1)[0]))
        history["grader_steps"].append(steps)
        outputs, metric = epoch_outputs(model, vae, request, is_cvae)
        history["metric"].append(metric)
        history["epoch_seconds"].append(time.monotonic() - epoch_started)
        outputs.update({key: np.array(value, dtype=np.float64) for key, value in history.items()})
        if publish is not None:
            publish(model, outputs)
        epoch = len(history["metric"])
        last = history["epoch_seconds"][-1]
        needed = last + (last + NEXT_CHILD_SECONDS if keep_epoch else 0.0)
        out_of_time = seconds is not None and time.monotonic() - STARTED + needed > seconds
        if epoch == max_epochs or out_of_time:
            break
        # BEGIN GRADER ONLY
        if is_cvae and bool(request.get("cvae.ask_grader", False)) and \
                grader_decision(epoch, float(request["cvae.decision_seconds"])) == "stop":
            break
        # END GRADER ONLY
        if not is_cvae and metric < float(request["vae.stop_below"]):
            break
    return outputs


def models_dir(result_path):
    """The folder of the exported models that go with a result file."""
    return os.path.splitext(result_path)[0] + ".models"


def import_tensorflow_without_pyplot():
    """Import TensorFlow before the submission does, without the matplotlib.pyplot import of Keras's start-up.

    Keras imports pyplot where it can, only to offer plotting: half a second of CPU per child
    (measured). It is blocked only while TensorFlow loads, so the submission can import
    matplotlib as usual afterwards.
    """
    blocked = "matplotlib" not in sys.modules
    if blocked:
        sys.modules["matplotlib"] = None
    try:
        import tensorflow  # noqa: F401
    finally:
        if blocked:
            del sys.modules["matplotlib"]


def main(argv):
    task, request_path, result_path = argv[1:4]
    # The submission's module-level code sees a plain command line, as if run alone.
    sys.argv = ["assignment.py"]
    sys.path.insert(0, os.getcwd())
    with np.load(request_path, allow_pickle=False) as data:
        request = {key: data[key] for key in data.files}
    global MODELS_DIR
    MODELS_DIR = models_dir(result_path)
    result = Probe(result_path)
    result.save()
    import_tensorflow_without_pyplot()
    if task == "units":
        run_units(request, result)
    elif task.startswith("unit:"):
        run_units(request, result, only=task[len("unit:"):])
    elif task in ("train_vae", "train_cvae"):
        seconds = float(argv[4]) if len(argv) > 4 else None
        keep_epoch = len(argv) > 5 and argv[5] == "keep-epoch"
        run_training(request, result, is_cvae=task == "train_cvae", seconds=seconds, keep_epoch=keep_epoch)
    else:
        raise SystemExit(f"unknown task {task}")
    return 0


if __name__ == "__main__":
    # os._exit skips interpreter teardown, which a submission may have broken.
    sys.stdout.flush()
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
