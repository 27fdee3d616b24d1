"""The grader's configuration: training budgets, limits on the child processes, seeds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from autograder.grading.sandbox import Limits
from autograder.paths import PACKAGE_DIR

# Written by ``build-zip --time-limit``: the autograder timeout the instructor sets on Gradescope.
DEPLOYMENT_FILE = PACKAGE_DIR / "deployment.json"
# Gradescope's default timeout, and what a grade leaves of any timeout for the container's start and upload.
DEFAULT_TIME_LIMIT_SECONDS = 600.0
PLATFORM_MARGIN_SECONDS = 40.0
# Where no platform's timeout binds (``grade`` and ``grade-all`` outside the zip), the grade is planned to
# Gradescope's longest timeout: training is then counted in work (the caps of epochs and the bars decide)
# for any correct submission on a busy machine, and the time limits only stop a run that hangs.
LOCAL_TIME_LIMIT_SECONDS = 2400.0


@dataclass(frozen=True)
class Budget:
    """How the grader trains a submission's models.

    The grader, not the student, builds the models (``VAE(784, latent_size)``),
    sets ``model.optimizer`` (Adam with a cosine decay of the learning rate over
    the cap's steps) and calls ``train_vae`` once per epoch on the first
    ``train_images`` training images. Training stops as soon as the model meets
    its check's bar (the VAE's loss below the threshold, the CVAE's samples
    above the full-credit accuracy), after at most ``vae_epochs`` /
    ``cvae_epochs`` epochs, and before an epoch that would not end within the
    grade's time. A latent size of 2 lets the CVAE learn to use its label
    within one or two epochs. The caps come from the calibration population
    (``bench/bench_population.py``; see BENCHMARKS.md).
    """

    train_images: int = 60_000
    batch_size: int = 128
    learning_rate: float = 3e-3
    vae_epochs: int = 8
    vae_latent_size: int = 15
    cvae_epochs: int = 4
    cvae_latent_size: int = 2
    # Test images on which the training children measure the VAE's loss to decide when to stop.
    eval_images: int = 2_000
    # Other test images, never shown to a child that runs student code, on which the exported
    # models are scored.
    score_images: int = 5_000


FULL_BUDGET = Budget()
# The master seed of the tests' grades (``GradeConfig.for_tests``), so that a failing test can be replayed.
TEST_SEED = 20_261_205
# Small budget: for tests and CI. The training budget itself cannot shrink much,
# since the reference must still earn full marks (the VAE needs about 900 steps
# to get below 120); it caps the epochs lower (a buggy submission trains to the
# cap), scores fewer images and gets tighter time limits.
SMALL_BUDGET = Budget(eval_images=500, score_images=1_000, vae_epochs=2, cvae_epochs=1)


@dataclass(frozen=True)
class GradeConfig:
    """Everything that decides a grade; the same config and submission give the same score."""

    budget: Budget = FULL_BUDGET
    # The master seed of every input (``grade.grade_seeds``). None: drawn from the assignment's secret
    # (``autograder/secret``, written by build-zip) and the submission's files, else at random.
    seed: int | None = None
    # Limits of each child process that runs student code.
    # TensorFlow starts a few threads per core and RLIMIT_NPROC counts threads,
    # so the process limit leaves room for them while still stopping a fork bomb.
    # The memory limit counts resident memory, about 540 MB of which are
    # TensorFlow's shared libraries; a correct eager training loop peaks near 1.5 GB.
    unit_limits: Limits = field(default_factory=lambda: Limits(wall_seconds=180.0, memory_mb=2500,
                                                               max_processes=512))
    train_limits: Limits = field(default_factory=lambda: Limits(wall_seconds=420.0, memory_mb=2500,
                                                                max_processes=512))
    # Each of the two children that run the exported models (they load no student code).
    model_limits: Limits = field(default_factory=lambda: Limits(wall_seconds=90.0, memory_mb=2000,
                                                                max_processes=512))
    # A probe run alone, after the combined run of all probes did not finish.
    probe_limits: Limits = field(default_factory=lambda: Limits(wall_seconds=90.0, memory_mb=2500,
                                                                max_processes=512))
    # The whole grade, children included, ends within this time (Gradescope's default limit is 600 s;
    # ``for_time_limit`` plans to another).
    total_seconds: float = DEFAULT_TIME_LIMIT_SECONDS - PLATFORM_MARGIN_SECONDS
    # Whether that time is a platform's timeout (Gradescope's), which may stop a slow submission's training
    # before its bar; False where the grader plans to ``LOCAL_TIME_LIMIT_SECONDS`` instead (``deployed``).
    platform_timeout: bool = True
    # The memory the README recommends giving the autograder (the machine's or container's limit, for the
    # grader and every child together); below it, every grade says so in its log and its results.
    recommended_memory_mb: int = 2048
    # Seconds kept for the CVAE's child whatever the VAE's child does. Within what is left, the
    # VAE's child starts no epoch unless one more epoch of the CVAE (as long as its own last epoch)
    # and the CVAE child's start-up still fit after it; the CVAE gets whatever the VAE leaves.
    cvae_reserve_seconds: float = 90.0
    # Seconds kept after training for the two children that run the exported models.
    scoring_reserve_seconds: float = 40.0
    # Stop training once the bar is met (off: train every model for its whole cap, to calibrate).
    early_stop: bool = True
    # Thresholds of the checks.
    vae_loss_threshold: float = 120.0
    generation_full_credit: float = 0.90
    generation_zero_credit: float = 0.20
    # The early stop's margins: the children measure on other inputs than the scores, so training
    # goes on until the bar is met with room for the difference (its standard deviation: 0.7 nats
    # between the ink-matched test sets, requests.test_split; 1.3 points of accuracy).
    vae_stop_margin: float = 2.0
    generation_stop_margin: float = 0.03
    # Samples per digit that decide the early stop, and that are scored.
    samples_per_digit: int = 100
    scored_samples_per_digit: int = 200

    def for_time_limit(self, seconds: float) -> "GradeConfig":
        """The budget planned to a platform timeout of ``seconds``: the grade ends ``PLATFORM_MARGIN_SECONDS``
        before it, and the training children get the time it adds (or lose what it takes away)."""
        total = seconds - PLATFORM_MARGIN_SECONDS
        train = self.train_limits.wall_seconds + total - self.total_seconds
        return dataclasses.replace(self, total_seconds=total,
                                   train_limits=dataclasses.replace(self.train_limits, wall_seconds=train))

    @classmethod
    def deployed(cls) -> "GradeConfig":
        """The default config for where this grader runs.

        In the Gradescope zip it is planned to the timeout that ``build-zip`` recorded (``DEPLOYMENT_FILE``);
        elsewhere no platform stops the grade, so it is planned to ``LOCAL_TIME_LIMIT_SECONDS``.
        """
        import json

        if not DEPLOYMENT_FILE.is_file():
            return dataclasses.replace(cls().for_time_limit(LOCAL_TIME_LIMIT_SECONDS), platform_timeout=False)
        return cls().for_time_limit(float(json.loads(DEPLOYMENT_FILE.read_text())["time_limit_seconds"]))

    def small(self) -> "GradeConfig":
        """The same checks with the small training budget and tighter time limits."""
        return dataclasses.replace(
            self,
            budget=SMALL_BUDGET,
            train_limits=dataclasses.replace(self.train_limits, wall_seconds=180.0),
        )

    @classmethod
    def for_tests(cls, seed: int = TEST_SEED) -> "GradeConfig":
        """For the tests: a tiny training budget, bars the reference meets on it, tight time limits, a fixed seed.

        Dozens of submissions are graded, some of which run into every limit, so
        each grade must end quickly: one epoch of 16,384 images per model (128
        steps). The reference still earns every check on it (measured: a VAE loss
        of 180-189 against the bar of 240, where a VAE that does not train stays
        near 545; 99-100% of its CVAE's samples recognised), so a test that
        expects a check to keep its points judges it, training checks included.
        """
        small = cls(seed=seed).small()
        return dataclasses.replace(
            small,
            budget=dataclasses.replace(small.budget, train_images=16_384, eval_images=512, score_images=512,
                                       vae_epochs=1, cvae_epochs=1),
            vae_loss_threshold=240.0,
            # A quarter of the samples: what the generation check computes per sample (the classifier, the
            # search for copies of training images) is most of the grader's own time.
            samples_per_digit=50,
            scored_samples_per_digit=50,
            # About three times what each child takes on 2 busy cores (units 6-10 s, a model's run 3-5 s): the
            # cases that run into a limit wait for it.
            unit_limits=dataclasses.replace(small.unit_limits, wall_seconds=25.0),
            probe_limits=dataclasses.replace(small.probe_limits, wall_seconds=15.0),
            model_limits=dataclasses.replace(small.model_limits, wall_seconds=20.0),
            train_limits=dataclasses.replace(small.train_limits, wall_seconds=60.0),
            total_seconds=240.0,
        )
