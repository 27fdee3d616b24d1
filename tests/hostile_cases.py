"""Hostile and broken submissions, what grading each must give, and the code that grades them.

Shared by ``tests/test_hostile.py`` and ``bench/bench_hostile.py``. Each case is a
submission (the reference solution with a patch, or files of its own) and its
expected outcome: the checks that lose credit with words their feedback must
show, the checks whose score this case does not decide, and everything else,
which must score what the reference scores under the same configuration.

Every case is graded by the real grader in a process of its own, with
``GradeConfig.for_tests()``, exactly as ``python -m autograder grade`` would, and
:func:`evaluate` checks the outcome plus what must hold for any submission: the
grader finishes within its time limit, the results file is valid and is the
report the grader computed, no forged text and none of the grader's files show
in the results or in the grader's output, no process the submission started
survives, and the grader's own memory stays bounded.
"""

from __future__ import annotations

import collections
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_DIR = Path(__file__).resolve().parents[1]
CODE_DIR = REPO_DIR / "hw" / "code"
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from autograder.children.harness import PROBES  # noqa: E402
from autograder.config import GradeConfig  # noqa: E402
from autograder.grading.grade import SCORED_MODELS  # noqa: E402
from autograder.scoring.checks import CHECKS, UNIT_CHECKS, negative_elbo  # noqa: E402
from autograder.scoring.classifier import CLASSIFIER_SHA256  # noqa: E402
from autograder.scoring.reference_stats import DEFAULT_SEED  # noqa: E402
from autograder.scoring.requests import unit_request  # noqa: E402
import population  # noqa: E402
from helpers import TEST_SEED, live_processes_with  # noqa: E402

# From the grader's registries, so that a new check is judged here without an edit.
ALL_CHECKS = tuple(spec.key for spec in CHECKS)
UNIT_KEYS = tuple(UNIT_CHECKS)
# The checks scored on models that the submission's train_vae trained.
TRAINING_KEYS = tuple(SCORED_MODELS)
# The checks that only a whole grade scores: those of the models the grader trains itself.
TRAINED_MODEL_KEYS = frozenset(TRAINING_KEYS) - frozenset(UNIT_KEYS)
# The interpreter of the graders the tests start, and how many grade at once.
PYTHON = os.environ.get("AUTOGRADER_TEST_PYTHON", sys.executable)
WORKERS = int(os.environ.get("HOSTILE_WORKERS", "2"))
# Text that forging submissions put in everything they forge; it must never reach the results.
FORGE_MARKER = "FORGED-BY-THE-SUBMISSION"
# The grader's own memory (its process alone, not its children) must stay below this.
GRADER_MEMORY_MB = 1000
# The self-check's seed (hw/code/check.py), which students see.
SELF_CHECK_SEED = 2024
# Seconds the grader may take beyond its own limit before the runner stops it.
RUNNER_GRACE_SECONDS = 60

# Runs in the grader's process: grade one submission with the tests' configuration and
# print the report the grader computed, to compare with the results file it wrote.
RUNNER = """
import json, sys
from pathlib import Path
from autograder.config import GradeConfig
from autograder.grading.grade import GraderError, grade

def log(line):
    print(line, file=sys.stderr, flush=True)

def peak_mb():
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the
    # process this one was forked from (a test runner with TensorFlow loaded).
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0

report, error = None, None
try:
    config = GradeConfig(seed=int(sys.argv[3])) if sys.argv[4] == "full" else GradeConfig.for_tests(int(sys.argv[3]))
    report = grade(Path(sys.argv[1]), Path(sys.argv[2]), config, log=log)
except GraderError as exc:
    error = str(exc)
print(json.dumps({
    "score": None if report is None else report.score,
    "scores": None if report is None else [test.score for test in report.tests],
    "error": error,
    "peak_mb": peak_mb(),
}))
"""

# Runs in a process like the grader's: whether children run as the unprivileged user
# (the grader's own test) and whether they get an empty network namespace.
PLATFORM_PROBE = """
import json, os, tempfile
from pathlib import Path
from autograder.config import GradeConfig
from autograder.grading.grade import Grader
from autograder.grading.sandbox import network_isolation_available

with tempfile.TemporaryDirectory(prefix="grade-probe-") as work:
    os.chmod(work, 0o711)
    sandbox = Path(work) / "sandbox"
    sandbox.mkdir()
    grader = Grader(sandbox, GradeConfig(), lambda line: None, 0.0)
    print(json.dumps({"unprivileged": grader.run_as is not None,
                      "network_namespace": network_isolation_available()}))
"""


@dataclass(frozen=True)
class Context:
    """What a case's files may depend on.

    ``port``: a TCP port on 127.0.0.1 where the tests listen (a connection
    succeeds unless the child's network is cut off); ``marker``: a number, used
    as a ``sleep`` duration or an extra argument, that every process the
    submission starts carries in its command line.
    """

    repo_dir: Path
    port: int
    marker: str


Files = dict[str, "str | bytes | None"]


@dataclass(frozen=True)
class Case:
    """One hostile or broken submission and the outcome its grading must have.

    ``lost``: check key -> words, one of which the check's feedback must show
    (the check must also score below full marks). ``unchecked``: checks whose
    score the case does not decide. Every other check must score what the
    reference scores. ``needs``: ``"unprivileged"`` (children run as an
    unprivileged user) or ``"network_namespace"``; without it the case is not
    graded. ``alone``: graded while no other case is, because it uses up a
    budget that concurrent children of the unprivileged user share (their
    ``RLIMIT_NPROC``). ``idle``: the submission waits for the time limits
    without using the CPU, so the case is graded in a lane of its own, beside
    the others.
    """

    name: str
    group: str
    summary: str
    build: Callable[[Context], Files]
    lost: dict[str, tuple[str, ...]] = field(default_factory=dict)
    unchecked: frozenset[str] = frozenset()
    output_words: tuple[str, ...] = ()
    needs: str | None = None
    alone: bool = False
    idle: bool = False
    # Checks that must come back marked unverified (scored from the child's own numbers, for a TA to review).
    unverified: frozenset[str] = frozenset()
    # "tests": GradeConfig.for_tests() and the session's seed; "full": the real budget and the seed of the
    # stored reference statistics.
    budget: str = "tests"
    # Graded as Gradescope grades: the built zip's run_autograder in its /autograder layout.
    through_zip: bool = False


# Building the submissions.


def reference() -> dict[str, str]:
    return {name: (CODE_DIR / name).read_text() for name in ("vae.py", "assignment.py")}


def replace(files: Files, name: str, old: str, new: str) -> Files:
    text = files[name]
    if text.count(old) != 1:
        raise ValueError(f"the reference {name} no longer holds {old!r} exactly once")
    files[name] = text.replace(old, new)
    return files


def prepend(files: Files, name: str, code: str) -> Files:
    files[name] = textwrap.dedent(code).strip() + "\n\n" + files[name]
    return files


def append(files: Files, name: str, code: str) -> Files:
    files[name] = files[name] + "\n\n" + textwrap.dedent(code).strip() + "\n"
    return files


def lose(keys, *words: str) -> dict[str, tuple[str, ...]]:
    return {key: words for key in keys}


TRAIN_VAE_START = '    batches = training.progress_bar(train_loader, "train")\n'

# Finds where the grader may write its results: the usual places and, from the
# command lines of the process's ancestors, any --results argument.
GUESS_RESULTS_PATHS = '''
def _guess_results_paths():
    import os
    paths = {"results.json", os.path.join("..", "results.json"), "/autograder/results/results.json"}
    pid = os.getppid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                args = handle.read().decode(errors="replace").split("\\0")
            with open(f"/proc/{pid}/stat", "rb") as handle:
                parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        for index, arg in enumerate(args):
            if os.path.isabs(arg) and (arg.endswith("results.json") or args[index - 1] == "--results"):
                paths.add(arg)
        pid = parent
    return [path for path in paths if os.path.isdir(os.path.dirname(os.path.abspath(path)))]
'''


def syntax_error_vae(ctx: Context) -> Files:
    return replace(reference(), "vae.py", "def reparametrize(mu, logvar):", "def reparametrize(mu, logvar)")


def syntax_error_assignment(ctx: Context) -> Files:
    return replace(reference(), "assignment.py", "def one_hot(labels, class_size):",
                   "def one_hot(labels, class_size)")


def missing_file(ctx: Context) -> Files:
    return {"vae.py": None, "assignment.py": reference()["assignment.py"]}


def missing_package(ctx: Context) -> Files:
    return prepend(reference(), "vae.py", "import torch")


def missing_class(ctx: Context) -> Files:
    return append(reference(), "vae.py", "del CVAE")


def missing_function(ctx: Context) -> Files:
    return append(reference(), "assignment.py", "del train_vae")


def wrong_shapes(ctx: Context) -> Files:
    return append(reference(), "vae.py", """
        _build_vae = VAE.__init__


        def _flat_vae(self, *args, **kwargs):
            _build_vae(self, *args, **kwargs)
            self.decoder = keras.Sequential([self.decoder, layers.Reshape((28 * 28,))])


        VAE.__init__ = _flat_vae
    """)


def nan_outputs(ctx: Context) -> Files:
    return append(reference(), "vae.py", """
        _build_vae = VAE.__init__


        def _nan_vae(self, *args, **kwargs):
            _build_vae(self, *args, **kwargs)
            self.decoder = keras.Sequential([self.decoder, layers.Lambda(lambda t: t * float("nan"))])


        VAE.__init__ = _nan_vae
    """)


def train_vae_raises(ctx: Context) -> Files:
    return replace(reference(), "assignment.py", TRAIN_VAE_START,
                   '    raise RuntimeError("my train_vae is not finished")\n')


def train_vae_returns_string(ctx: Context) -> Files:
    return replace(reference(), "assignment.py", "    return total_loss\n",
                   '    return f"total loss {total_loss:.1f}"\n')


def optimizer_missing(ctx: Context) -> Files:
    # The student's own script creates the optimizer in a global; the grader never runs that code.
    files = replace(reference(), "assignment.py", "        model.optimizer.apply_gradients(",
                    "        OPTIMIZER.apply_gradients(")
    return append(files, "assignment.py", "OPTIMIZER = None")


def import_infinite_loop(ctx: Context) -> Files:
    return prepend(reference(), "vae.py", """
        while True:
            pass
    """)


def train_vae_hangs(ctx: Context) -> Files:
    # A wait that never ends (a deadlock), not a busy loop: the time limits stop it the same way, and the
    # busy loop at import above already shows that a child spinning on the CPU is stopped.
    return replace(reference(), "assignment.py", TRAIN_VAE_START,
                   "    import threading\n    threading.Event().wait()\n")


def memory_hog(ctx: Context) -> Files:
    # 200 MB at a time, written to so that it is resident, up to 4 GB; then it waits.
    return prepend(reference(), "vae.py", """
        import time as _time

        import numpy as _np

        _hog = [_np.ones(25_000_000) for _ in range(20)]
        _time.sleep(600)
    """)


def process_spawner(ctx: Context) -> Files:
    return prepend(reference(), "vae.py", f"""
        import subprocess as _subprocess

        _sleepers = [_subprocess.Popen(["sleep", "{ctx.marker}"]) for _ in range(3000)]
    """)


def gigabyte_stdout(ctx: Context) -> Files:
    return prepend(reference(), "assignment.py", """
        import sys as _sys

        _line = b"x" * (1 << 20) + b"\\n"
        for _ in range(1024):
            _sys.stdout.buffer.write(_line)
        _sys.stdout.flush()
    """)


def sleeps_past_limit(ctx: Context) -> Files:
    return prepend(reference(), "assignment.py", """
        import time as _time

        _time.sleep(3600)
    """)


def lingering_daemon(ctx: Context) -> Files:
    # A detached process that waits for the grader to end, then overwrites its results.
    daemon = GUESS_RESULTS_PATHS + f'''
import json, os, sys, time
paths = _guess_results_paths()
grader = os.getppid()
deadline = time.time() + 600
while time.time() < deadline and os.path.exists(f"/proc/{{grader}}"):
    time.sleep(0.2)
time.sleep(2)
for path in paths:
    try:
        with open(path, "w") as handle:
            json.dump({{"score": 100.0, "output": "{FORGE_MARKER}", "tests": []}}, handle)
    except OSError:
        pass
'''
    return prepend(reference(), "assignment.py", f"""
        import subprocess as _subprocess
        import sys as _sys

        _subprocess.Popen([_sys.executable, "-c", {daemon!r}, "{ctx.marker}"], start_new_session=True,
                          stdin=_subprocess.DEVNULL, stdout=_subprocess.DEVNULL, stderr=_subprocess.DEVNULL)
    """)


def sys_exit_at_import(ctx: Context) -> Files:
    return prepend(reference(), "vae.py", """
        import sys as _sys

        _sys.exit(0)
    """)


def os_exit_at_import(ctx: Context) -> Files:
    return prepend(reference(), "vae.py", """
        import os as _os

        _os._exit(0)
    """)


def sys_exit_in_training(ctx: Context) -> Files:
    return replace(reference(), "assignment.py", TRAIN_VAE_START, "    sys.exit(0)\n")


def os_exit_in_training(ctx: Context) -> Files:
    return replace(reference(), "assignment.py", TRAIN_VAE_START, "    import os\n    os._exit(0)\n")


def kills_its_parent(ctx: Context) -> Files:
    # SIGKILL to every ancestor: the harness's parent is the grader.
    return prepend(reference(), "vae.py", """
        import os as _os
        import signal as _signal

        _pid = _os.getppid()
        while _pid > 1:
            try:
                with open(f"/proc/{_pid}/stat", "rb") as _handle:
                    _parent = int(_handle.read().rsplit(b")", 1)[1].split()[1])
                _os.kill(_pid, _signal.SIGKILL)
            except (OSError, ValueError):
                break
            _pid = _parent
    """)


def closes_file_descriptors(ctx: Context) -> Files:
    return prepend(reference(), "vae.py", """
        import os as _os

        _os.close(0)
        _null = _os.open(_os.devnull, _os.O_WRONLY)
        _os.dup2(_null, 1)
        _os.dup2(_null, 2)
        _os.closerange(3, 1024)
    """)


def forges_results(ctx: Context) -> Files:
    forged = {"score": 100.0, "execution_time": 1.0, "output": FORGE_MARKER,
              "tests": [{"name": spec.name, "score": spec.points, "max_score": spec.points,
                         "output": FORGE_MARKER} for spec in CHECKS]}
    names = ["units", "train_vae", "train_cvae", *(f"unit-{key}" for key in UNIT_KEYS)]
    return prepend(reference(), "assignment.py", GUESS_RESULTS_PATHS + textwrap.dedent(f"""
        import os as _os

        import numpy as _np

        _FORGED = {json.dumps(forged)!r}


        class _KillsWhoeverUnpicklesIt:
            def __reduce__(self):
                return (_os._exit, (86,))


        for _path in _guess_results_paths():
            try:
                with open(_path, "w") as _handle:
                    _handle.write(_FORGED)
            except OSError:
                pass
        print(_FORGED, flush=True)
        # Result files for the grader's later steps, under the names it used to give them.
        for _name in {names!r}:
            try:
                _np.savez(f"result-{{_name}}.npz", **{{
                    "vae.error": _np.array("{FORGE_MARKER}"), "cvae.error": _np.array("{FORGE_MARKER}"),
                    "vae.x_hat": _np.array([_KillsWhoeverUnpicklesIt()], dtype=object)}})
            except OSError:
                pass
    """))


def blocks_result_paths(ctx: Context) -> Files:
    names = ["train_vae", "train_cvae", *(f"unit-{key}" for key in UNIT_KEYS)]
    return prepend(reference(), "assignment.py", f"""
        import os as _os

        for _name in {names!r}:
            try:
                _os.makedirs(_os.path.join(f"result-{{_name}}.npz", "inside"))
            except OSError:
                pass
    """)


# Grader files that attacks try to read, as paths from the repository's root.
GRADER_FILES = {"checks": "autograder/scoring/checks.py", "grade": "autograder/grading/grade.py"}


def existing(path: Path) -> Path:
    """``path``, which must exist: an attack on a file that is not there would pass without testing anything."""
    if not path.exists():
        raise FileNotFoundError(f"the attack's target {path} does not exist; update the case")
    return path


def reads_grader_files(ctx: Context) -> Files:
    targets = [str(existing(ctx.repo_dir / path)) for path in (GRADER_FILES["checks"], GRADER_FILES["grade"],
                                                              "autograder/classifier.keras", "hw/code/vae.py")]
    vae = f'''"""Tries to read the grader's files and to show them in its feedback and its output."""
import hashlib
import os

TARGETS = {targets!r}
try:
    grader_folder = os.readlink(f"/proc/{{os.getppid()}}/cwd")
except OSError:
    grader_folder = "/autograder/source"
TARGETS.append(os.path.join(grader_folder, "autograder", "checks.py"))
leaked, refused = [], []
for path in TARGETS:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        refused.append(f"{{os.path.basename(path)}}: {{type(error).__name__}}")
        continue
    if path.endswith(".keras"):
        leaked.append(hashlib.sha256(data).hexdigest())
    else:
        lines = data.decode(errors="replace").splitlines()
        leaked.append(lines[0])
        leaked.extend(line.strip() for line in lines if "random." + "normal(" in line)
print("\\n".join(leaked), flush=True)
read = len(TARGETS) - len(refused)
raise RuntimeError(f"read {{read}} of {{len(TARGETS)}} grader files: " + " | ".join(leaked + refused))
'''
    return {"vae.py": vae, "assignment.py": "import vae\n"}


def opens_network_connection(ctx: Context) -> Files:
    return prepend(reference(), "vae.py", f"""
        import socket as _socket

        try:
            _socket.create_connection(("127.0.0.1", {ctx.port}), timeout=5).close()
        except OSError as _error:
            raise RuntimeError(f"network closed: {{type(_error).__name__}}") from None
        raise RuntimeError("NETWORK-OPEN: connected to a server of the grader's machine")
    """)


def deep_folder_tree(ctx: Context) -> Files:
    # Deeper than Python's recursion limit: shutil.rmtree and os.walk fail on it.
    return prepend(reference(), "vae.py", """
        import os as _os

        if not _os.path.exists("nest"):
            _start = _os.open(".", _os.O_RDONLY)
            _os.mkdir("nest")
            _os.chdir("nest")
            for _ in range(3000):
                _os.mkdir("d")
                _os.chdir("d")
            _os.fchdir(_start)
            _os.close(_start)
    """)


def result_zip_bomb(ctx: Context) -> Files:
    # A result file of 2 MB whose one member unpacks to 1.6 GB: the submission makes
    # the harness write it in place of each result (a patch of the harness in its own process).
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("vae.x_hat.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f8", "fortran_order": False, "shape": (200_000_000,)})
            block = bytes(1 << 20)
            for _ in range(200_000_000 * 8 // len(block) + 1):
                member.write(block)
    files = append(reference(), "assignment.py", """
        import shutil as _shutil

        _harness = sys.modules.get("__main__")
        if hasattr(_harness, "Probe"):
            _harness.Probe.save = lambda self: _shutil.copyfile("bomb.npz", self.path)
    """)
    files["bomb.npz"] = buffer.getvalue()
    return files


def rewrites_grader_request(ctx: Context) -> Files:
    # Without its KL term the loss would fail; the submission zeroes mu and logvar in the
    # grader's copy of the inputs, where the KL term is zero.
    files = replace(reference(), "vae.py", "    return (reconstruction + kl) / batch_size",
                    "    return reconstruction / batch_size")
    return prepend(files, "vae.py", """
        import os as _os

        import numpy as _np

        if _os.path.exists("units.npz"):
            with _np.load("units.npz") as _data:
                _request = {key: _data[key] for key in _data.files}
            for _key in list(_request):
                if _key.startswith("loss.") and _key.endswith((".mu", ".logvar")):
                    _request[_key] = _np.zeros_like(_request[_key])
            with open("units.tmp.npz", "wb") as _handle:
                _np.savez(_handle, **_request)
            _os.replace("units.tmp.npz", "units.npz")
    """)


def always_equal_one_hot(ctx: Context) -> Files:
    return append(reference(), "assignment.py", """
        import numpy as np


        class _AlwaysEqual:
            shape = (37, 10)

            def __eq__(self, other):
                return True

            def __ne__(self, other):
                return False

            def __array__(self, dtype=None, copy=None):
                return np.zeros((37, 10))

            def numpy(self):
                return self


        _one_hot = one_hot


        def one_hot(labels, class_size):
            # The grader's probe hands over 37 labels (as a tensor, as training does).
            if int(np.shape(labels)[0]) == 37:
                return _AlwaysEqual()
            return _one_hot(labels, class_size)
    """)


def numpy_subclass_reparametrize(ctx: Context) -> Files:
    return append(reference(), "vae.py", """
        import numpy as _np


        class _Agreeable(_np.ndarray):
            \"\"\"Claims to equal anything and to have the mean and variance the grader wants.\"\"\"

            def __eq__(self, other):
                return _np.ones(self.shape, dtype=bool)

            def mean(self, *args, **kwargs):
                return _np.asarray(self).mean(*args, **kwargs)

            def var(self, *args, **kwargs):
                return _np.ones(self.shape[-1])

            def __array__(self, dtype=None, copy=None):
                return _np.asarray(self).view(_np.ndarray) + _np.random.normal(size=self.shape)


        _reparametrize = reparametrize


        def reparametrize(mu, logvar):
            # The grader's 20,000 draws of the distribution check: no noise at all.
            if tf.executing_eagerly() and mu.shape[0] == 20_000:
                return _np.array(mu).view(_Agreeable)
            return _reparametrize(mu, logvar)
    """)


def decoder_ignores_z(ctx: Context) -> Files:
    return append(reference(), "vae.py", """
        class _DropLatent(keras.layers.Layer):
            def call(self, inputs):
                return tf.concat([tf.zeros_like(inputs[:, :-10]), inputs[:, -10:]], axis=-1)


        _build_cvae = CVAE.__init__


        def _collapsed_cvae(self, *args, **kwargs):
            _build_cvae(self, *args, **kwargs)
            self.decoder = keras.Sequential([_DropLatent(), self.decoder])


        CVAE.__init__ = _collapsed_cvae
    """)


def memorises_training_images(ctx: Context) -> Files:
    return append(reference(), "vae.py", """
        import os as _os

        import numpy as _np


        def _stored_images():
            \"\"\"Training images from the grader's own input files in the working folder.\"\"\"
            for name, images, labels in (("train.npz", "train.images", "train.labels"),
                                         ("units.npz", "steps.images", "steps.labels")):
                if _os.path.exists(name):
                    with _np.load(name) as data:
                        return data[images], data[labels]
            return None


        class _Memoriser(keras.layers.Layer):
            \"\"\"Decodes (z, label) to a stored training image of that label, picked by z.\"\"\"

            def __init__(self, images, labels):
                super().__init__(name="memoriser")
                self.count = int(min(_np.sum(labels == d) for d in range(10)))
                bank = _np.stack([images[labels == d][: self.count] for d in range(10)])
                self.bank = tf.constant(bank[:, :, None].astype("float32") / 255.0)

            def call(self, inputs):
                digit = tf.argmax(inputs[:, -10:], axis=-1, output_type=tf.int32)
                index = tf.cast(tf.math.floormod(tf.floor(tf.abs(inputs[:, 0]) * 9973.0), self.count), tf.int32)
                return tf.gather_nd(self.bank, tf.stack([digit, index], axis=-1))


        _build_cvae = CVAE.__init__


        def _memorising_cvae(self, *args, **kwargs):
            _build_cvae(self, *args, **kwargs)
            stored = _stored_images()
            if stored is not None:
                self.decoder = _Memoriser(*stored)


        CVAE.__init__ = _memorising_cvae
    """)


def patches_harness_outputs(ctx: Context) -> Files:
    # Trains nothing; at import, rewrites the harness function that returns x_hat, mu and logvar so
    # that the reconstructions are the input images and the codes the prior's.
    files = replace(reference(), "assignment.py", TRAIN_VAE_START,
                    TRAIN_VAE_START + "    return 100.0 * len(list(train_loader))\n")
    return append(files, "assignment.py", """
        import sys as _sys

        import numpy as _np

        _harness = _sys.modules.get("__main__")


        def _forged(model, is_cvae, images, labels, eps):
            n = len(images)
            return {"mu": _np.zeros((n, eps.shape[1])), "logvar": _np.zeros((n, eps.shape[1])),
                    "x_hat": images[:, None] / 255.0, "decoded_shape": _np.array([n, 1, 28, 28.0])}


        if hasattr(_harness, "encode_decode"):
            _harness.encode_decode = _forged
    """)


def lookup_table_decoder(ctx: Context) -> Files:
    # The CVAE's decoder is a table: z picks one of 60 training digits of the requested label,
    # shifted one pixel right; the digits ship with the submission.
    sys.path.insert(0, str(CODE_DIR))
    from mnist_data import load_arrays

    arrays = load_arrays()
    bank = np.stack([arrays.train_images[arrays.train_labels == d][:60] for d in range(10)])
    bank = np.roll(bank, 1, axis=-1).astype(np.float32) / 255.0
    buffer = io.BytesIO()
    np.save(buffer, bank)
    files = append(reference(), "vae.py", """
        import os as _os

        import numpy as _np


        class _Table(keras.layers.Layer):
            def __init__(self):
                super().__init__(name="table")
                bank = _np.load(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "digits.npy"))
                self.bank = tf.constant(bank[:, :, None])

            def call(self, inputs):
                digit = tf.argmax(inputs[:, -10:], axis=-1, output_type=tf.int32)
                index = tf.cast(tf.math.floormod(tf.floor(tf.abs(inputs[:, 0]) * 9973.0), 60.0), tf.int32)
                return tf.gather_nd(self.bank, tf.stack([digit, index], axis=-1))


        _build_cvae = CVAE.__init__


        def _table_cvae(self, *args, **kwargs):
            _build_cvae(self, *args, **kwargs)
            self.decoder = _Table()


        CVAE.__init__ = _table_cvae
    """)
    files["digits.npy"] = buffer.getvalue()
    return files


# Wraps both models' decoders in a layer whose graph, traced for the grader's export only
# (256 rows, not eager), does something outside the model's computation.
EXPORT_ONLY_LAYER = """
    class _ExportOnly(keras.layers.Layer):
        def call(self, images):
            if tf.executing_eagerly() or images.shape[0] != 256:
                return images
            return images + 0.0 * tf.cast(_effect(), images.dtype)


    for _model in (VAE, CVAE):
        def _wrapped(self, *args, _build=_model.__init__, **kwargs):
            _build(self, *args, **kwargs)
            self.decoder = keras.Sequential([self.decoder, _ExportOnly()])

        _model.__init__ = _wrapped
"""


def graph_reads_files(ctx: Context) -> Files:
    target = existing(ctx.repo_dir / GRADER_FILES["checks"])
    return append(reference(), "vae.py", f"""
        def _effect():
            return tf.strings.length(tf.io.read_file({str(target)!r}))
    """ + EXPORT_ONLY_LAYER)


def graph_loops_forever(ctx: Context) -> Files:
    return append(reference(), "vae.py", """
        def _effect():
            return tf.while_loop(lambda i: i >= 0, lambda i: i + 1, [tf.constant(0, tf.int64)])[0]
    """ + EXPORT_ONLY_LAYER)


def graph_allocates(ctx: Context) -> Files:
    return append(reference(), "vae.py", """
        def _effect():
            return tf.reduce_sum(tf.random.uniform([2**16, 2**16]))
    """ + EXPORT_ONLY_LAYER)


def forges_exported_models(ctx: Context) -> Files:
    # Replaces the harness's export: a link to / for the CVAE, a graph file of garbage for the
    # train_vae probe, and for the VAE a real SavedModel whose functions return whatever it likes.
    return append(reference(), "assignment.py", """
        import os as _os
        import sys as _sys

        _harness = _sys.modules.get("__main__")


        def _forged_export(model, is_cvae, latent_size, path):
            if is_cvae:
                _os.symlink("/", path)
            elif "train_vae" in path:
                _os.makedirs(path, exist_ok=True)
                with open(_os.path.join(path, "saved_model.pb"), "wb") as handle:
                    handle.write(b"FORGED" * 1000)
            else:
                module = tf.Module()
                module.encode = tf.function(lambda x: {"mu": tf.zeros([256, 3]), "logvar": tf.zeros([256, 3])},
                                            input_signature=[tf.TensorSpec([256, 1, 28, 28], tf.float32)])
                module.decode = tf.function(lambda z: {"x_hat": tf.fill([256, 1, 28, 28], 0.5)},
                                            input_signature=[tf.TensorSpec([256, 15], tf.float32)])
                tf.saved_model.save(module, path, signatures={"encode": module.encode, "decode": module.decode})


        if hasattr(_harness, "export_model"):
            _harness.export_model = _forged_export
    """)


def reparametrize_returns_mu(ctx: Context) -> Files:
    return replace(reference(), "vae.py", "    return mu + tf.exp(0.5 * logvar) * eps", "    return mu")


def self_check_answers() -> tuple[list[int], dict[int, float]]:
    """The one-hot labels and the loss per batch size of the self-check's inputs (seed 2024)."""
    placeholder = np.zeros((512, 28, 28), np.uint8)
    request = unit_request(SELF_CHECK_SEED, placeholder, np.zeros(512, np.int64))
    losses = {}
    for index in range(int(request["loss.count"])):
        batch = [request[f"loss.{index}.{name}"] for name in ("x_hat", "x", "mu", "logvar")]
        losses[len(batch[1])] = negative_elbo(*batch)
    return request["one_hot.labels"].tolist(), losses


def hard_codes_self_check(ctx: Context) -> Files:
    labels, losses = self_check_answers()
    files = append(reference(), "assignment.py", f"""
        import numpy as np

        _LABELS = {labels!r}
        _one_hot = one_hot


        def one_hot(labels, class_size):
            if len(labels) == len(_LABELS):
                return np.eye(class_size, dtype=np.float32)[_LABELS]
            return _one_hot(labels, class_size)
    """)
    return append(files, "vae.py", f"""
        _LOSSES = {losses!r}
        _loss_function = loss_function


        def loss_function(x_hat, x, mu, logvar):
            if tf.executing_eagerly() and int(x.shape[0]) in _LOSSES:
                return tf.constant(_LOSSES[int(x.shape[0])], tf.float32)
            return _loss_function(x_hat, x, mu, logvar)
    """)


TIME_LIMIT = ("time limit",)
# The checks that need assignment.py: its probes and the training checks.
EVERYTHING_AFTER_ASSIGNMENT = tuple(key for key in ALL_CHECKS if key in TRAINING_KEYS or
                                    (key in PROBES and "assignment" in PROBES[key][1]))

CASES: tuple[Case, ...] = (
    # Broken.
    Case("syntax_error_vae", "broken", "a syntax error in vae.py", syntax_error_vae,
         lose(ALL_CHECKS, "SyntaxError")),
    Case("syntax_error_assignment", "broken", "a syntax error in assignment.py", syntax_error_assignment,
         lose(EVERYTHING_AFTER_ASSIGNMENT, "SyntaxError")),
    Case("missing_file", "broken", "no vae.py", missing_file, lose(ALL_CHECKS, "no vae.py"),
         output_words=("Not graded",)),
    Case("missing_package", "broken", "imports torch, which is not installed", missing_package,
         lose(ALL_CHECKS, "No module named 'torch'")),
    Case("missing_class", "broken", "no CVAE class", missing_class,
         lose(("cvae_forward", "cvae_generation"), "has no attribute 'CVAE'")),
    Case("missing_function", "broken", "no train_vae function", missing_function,
         lose(TRAINING_KEYS, "has no attribute 'train_vae'")),
    Case("wrong_shapes", "broken", "the VAE's decoder returns flat (N, 784) images", wrong_shapes,
         {"vae_forward": ("should have shape (5, 1, 28, 28), got (5, 784)",),
          "train_vae": ("raised an error",), "vae_training": ("raised an error",)}),
    Case("nan_outputs", "broken", "the VAE's decoder returns NaN", nan_outputs,
         {"vae_forward": ("NaN",), "train_vae": ("NaN or infinite",),
          "vae_training": ("NaN or infinite",)}),
    Case("train_vae_raises", "broken", "train_vae raises an exception", train_vae_raises,
         lose(TRAINING_KEYS, "my train_vae is not finished")),
    Case("train_vae_returns_string", "broken", "train_vae returns a string", train_vae_returns_string,
         lose(TRAINING_KEYS, "could not convert string to float: 'total loss")),
    Case("optimizer_missing", "broken", "train_vae uses a global optimizer that only the student's script sets",
         optimizer_missing, lose(TRAINING_KEYS, "'NoneType' object has no attribute 'apply_gradients'")),
    # Runaway.
    Case("import_infinite_loop", "runaway", "an infinite loop when vae.py is imported", import_infinite_loop,
         lose(ALL_CHECKS, *TIME_LIMIT)),
    Case("train_vae_hangs", "runaway", "train_vae waits forever", train_vae_hangs,
         lose(TRAINING_KEYS, *TIME_LIMIT), idle=True),
    Case("memory_hog", "runaway", "allocates 4 GB when vae.py is imported", memory_hog,
         lose(ALL_CHECKS, "memory")),
    Case("process_spawner", "runaway", "starts 3000 processes when vae.py is imported", process_spawner,
         lose(ALL_CHECKS, "processes", "Resource temporarily unavailable"), alone=True),
    Case("gigabyte_stdout", "runaway", "prints 1 GB whenever assignment.py is imported", gigabyte_stdout),
    Case("sleeps_past_limit", "runaway", "sleeps an hour when assignment.py is imported", sleeps_past_limit,
         lose(EVERYTHING_AFTER_ASSIGNMENT, *TIME_LIMIT), idle=True),
    Case("lingering_daemon", "runaway", "leaves a detached process that overwrites the results after the grader",
         lingering_daemon),
    # Escaping.
    Case("sys_exit_at_import", "escaping", "sys.exit(0) when vae.py is imported", sys_exit_at_import,
         lose(ALL_CHECKS, "SystemExit")),
    Case("os_exit_at_import", "escaping", "os._exit(0) when vae.py is imported", os_exit_at_import,
         lose(ALL_CHECKS, "os._exit")),
    Case("sys_exit_in_training", "escaping", "sys.exit(0) in train_vae", sys_exit_in_training,
         lose(TRAINING_KEYS, "SystemExit")),
    Case("os_exit_in_training", "escaping", "os._exit(0) in train_vae", os_exit_in_training,
         lose(TRAINING_KEYS, "os._exit")),
    Case("kills_its_parent", "escaping", "SIGKILL to the grader and every other ancestor", kills_its_parent,
         needs="unprivileged"),
    Case("closes_file_descriptors", "escaping", "closes stdin, sends stdout and stderr to /dev/null, closes fds 3-1023",
         closes_file_descriptors),
    Case("forges_results", "escaping",
         "writes forged results.json files and forged result .npz files for later steps, prints forged results",
         forges_results),
    Case("blocks_result_paths", "escaping", "puts folders where the grader's later result files used to go",
         blocks_result_paths),
    Case("rewrites_grader_request", "escaping", "a loss without KL, and zeroes mu and logvar in the grader's input file",
         rewrites_grader_request, {"loss_function": ("KL term is missing",)},
         unchecked=frozenset(TRAINING_KEYS)),
    Case("deep_folder_tree", "escaping", "leaves a folder tree 3000 levels deep in its working folder",
         deep_folder_tree),
    Case("result_zip_bomb", "escaping", "makes the harness write a result file that unpacks to 1.6 GB",
         result_zip_bomb, lose(EVERYTHING_AFTER_ASSIGNMENT, "came back")),
    Case("reads_grader_files", "escaping",
         "reads the grader's source, the classifier and the reference solution and shows them",
         reads_grader_files, lose(ALL_CHECKS, "read 0 of 5 grader files"), needs="unprivileged"),
    Case("opens_network_connection", "escaping", "connects to a server on the grader's machine",
         opens_network_connection, lose(ALL_CHECKS, "network closed"), needs="network_namespace"),
    # Gaming.
    Case("always_equal_one_hot", "gaming", "one_hot returns an object equal to anything", always_equal_one_hot,
         {"one_hot": ("should be 1 at column",)}),
    Case("numpy_subclass_reparametrize", "gaming",
         "reparametrize returns mu as a numpy subclass that claims the right mean and variance",
         numpy_subclass_reparametrize, {"reparametrize": ("z equals mu",)}),
    Case("decoder_ignores_z", "gaming", "the CVAE's decoder ignores z", decoder_ignores_z,
         {"cvae_generation": ("std): 0.000",)}),
    Case("memorises_training_images", "gaming", "the CVAE's decoder returns training images from the grader's files",
         memorises_training_images, {"cvae_generation": ("copies of training images",)}),
    Case("patches_harness_outputs", "gaming",
         "trains nothing and rewrites the harness so that x_hat is the input and mu, logvar the prior's",
         patches_harness_outputs, lose(("train_vae", "vae_training"), "Expected the loss to fall", "Negative ELBO"),
         unchecked=frozenset(("cvae_generation",))),
    Case("lookup_table_decoder", "gaming",
         "the CVAE's decoder picks one of 60 training digits of the label, shifted a pixel, from a shipped .npy",
         lookup_table_decoder, {"cvae_generation": ("training images up to a shift",)}),
    Case("forges_exported_models", "gaming",
         "replaces the exported models: a link to /, a graph of garbage, a model of constant outputs",
         # The CVAE's export raises (its link cannot be made), so its check is scored from the child's own
         # numbers and flagged for review, as for any model that cannot be exported.
         forges_exported_models, {"train_vae": ("could not",), "vae_training": ("could not",)},
         unverified=frozenset(("cvae_generation",))),
    Case("graph_reads_files", "escaping", "the exported graph reads the grader's checks.py", graph_reads_files,
         lose(TRAINING_KEYS, "ReadFile")),
    Case("graph_loops_forever", "runaway", "the exported graph loops forever", graph_loops_forever,
         lose(TRAINING_KEYS, *TIME_LIMIT)),
    Case("graph_allocates", "runaway", "the exported graph fills 16 GB with random numbers", graph_allocates,
         # Stopped by a limit either way: TensorFlow's allocation fails (OOM, or an abort where the address
         # space limit hits first), or filling the memory runs into the time limit.
         lose(TRAINING_KEYS, "OOM when allocating", "SIGABRT", "memory", *TIME_LIMIT)),
    Case("reparametrize_returns_mu", "gaming", "reparametrize returns mu unchanged", reparametrize_returns_mu,
         {"reparametrize": ("z equals mu",), "reparametrize_gradient": ("no gradient reaches logvar",)},
         unchecked=frozenset(("vae_training", "cvae_generation"))),
    Case("hard_codes_self_check", "gaming", "one_hot and loss_function hard-code the self-check's answers",
         hard_codes_self_check,
         {"one_hot": ("should be 1 at column",), "loss_function": ("expected",)}),
)


def bug(file: str, old: str, new: str) -> Callable[[Context], Files]:
    """A builder of the reference with ``old`` replaced by ``new`` in ``file``."""
    return lambda ctx: replace(reference(), file, old, new)


# The usual student bugs, one at a time in the reference. With the tests' budget a bug in the loss or in
# reparametrize may or may not spoil the models it trains, so those training checks are left unchecked
# here; the calibration population's bench grades such bugs with the real budget.
BUGS: tuple[Case, ...] = (
    Case("mean_over_pixels", "bug", "the reconstruction term is a mean over pixels",
         bug("vae.py", "    reconstruction = bce_function(x_hat, x)\n",
             "    reconstruction = bce_function(x_hat, x) / 784.0\n"),
         {"loss_function": ("mean over pixels",)}, unchecked=frozenset(("vae_training", "cvae_generation"))),
    Case("flipped_kl_sign", "bug", "the KL term has the wrong sign",
         bug("vae.py", "    kl = -0.5 * tf.reduce_sum(", "    kl = 0.5 * tf.reduce_sum("),
         {"loss_function": ("wrong sign",), "vae_training": ("NaN or infinite",)},
         unchecked=frozenset(("cvae_generation",))),
    Case("logvar_as_std", "bug", "reparametrize uses logvar as the standard deviation",
         bug("vae.py", "    return mu + tf.exp(0.5 * logvar) * eps", "    return mu + logvar * eps"),
         {"reparametrize": ("variance",), "reparametrize_gradient": ("d z / d logvar",)},
         unchecked=frozenset(("vae_training", "cvae_generation"))),
    Case("no_kl", "bug", "the loss leaves out the KL term",
         bug("vae.py", "    return (reconstruction + kl) / batch_size", "    return reconstruction / batch_size"),
         {"loss_function": ("KL term is missing",)}, unchecked=frozenset(("vae_training", "cvae_generation"))),
    Case("decoder_ignores_label", "bug", "the CVAE's decoder gets zeros for the label",
         bug("vae.py", "        x_hat = self.decoder(tf.concat([z, c], axis=-1))",
             "        x_hat = self.decoder(tf.concat([z, tf.zeros_like(c)], axis=-1))"),
         {"cvae_generation": ("Decoding one z with the ten labels changes the image by",)}),
    Case("never_steps_optimizer", "bug", "train_vae computes the gradients and never applies them",
         bug("assignment.py",
             "        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))\n", ""),
         {"train_vae": ("optimizer",), "vae_training": ("Negative ELBO",), "cvae_generation": ("Classifier",)}),
    Case("wrong_one_hot", "bug", "one_hot puts each label's 1 one column early",
         bug("assignment.py", "    return tf.one_hot(tf.cast(labels, tf.int32), class_size, dtype=tf.float32)",
             "    return tf.one_hot(tf.cast(labels, tf.int32) - 1, class_size, dtype=tf.float32)"),
         {"one_hot": ("should be 1 at column",), "cvae_generation": ("one_hot",)}),
    Case("missing_reparametrize", "bug", "reparametrize is misspelt",
         bug("vae.py", "def reparametrize(mu, logvar):", "def reparametrise(mu, logvar):"),
         lose(tuple(key for key in ALL_CHECKS if key not in ("one_hot", "loss_function")), "reparametrize")),
)


# The calibration population (tests/population) in the pool: the slowest member, the slip a TA forgives,
# and every mutant whose bug reaches a training check (the unit checks of every member and mutant are
# test_population's, without training; the bench grades them all with the real budget).
SLOWEST_MEMBER = "b_numpyloss"
FLAT_DECODER = "c_flatten_call-flat-decoder"
# Training checks whose outcome the tests' budget does not decide for a mutant: its bug spoils them with
# the real budget (the bench's verdict) but one epoch of 128 steps may leave them either way, or its bug
# also spoils a check it does not declare, which the real budget's longer training repairs. Measured
# with GradeConfig.for_tests on 2 cores (2026-12-05): the mean over pixels and the decoder-only gradients
# kept the VAE's bar of 240 or ran out of time; the others lost the CVAE's check as well.
TESTS_BUDGET_UNDECIDED: dict[str, frozenset[str]] = {
    # The slowest member's CVAE samples barely vary after 128 steps (within-digit std 0.018, the gate 0.02).
    SLOWEST_MEMBER: frozenset(("cvae_generation",)),
    "a_eager3-pixel-mean-bce": frozenset(("vae_training", "cvae_generation")),
    "a_tfstep_tanh-no-kl": frozenset(("cvae_generation",)),
    "b_keras2-kl-sign": frozenset(("cvae_generation",)),
    "b_tffunc_cached-linear-decoder": frozenset(("cvae_generation",)),
    "c_bottleneck-decoder-only-grads": frozenset(("vae_training", "cvae_generation")),
}


def population_case(name: str) -> Case:
    mutant = population.mutants().get(name)
    unchecked = TESTS_BUDGET_UNDECIDED.get(name, frozenset())
    if mutant is None:
        return Case(name, "member", population.members()[name].style, lambda ctx: population.submission_files(name),
                    unchecked=unchecked)
    words = {FLAT_DECODER: (", 784)",)}.get(name, ())
    return Case(name, "mutant", mutant.bug, lambda ctx: population.submission_files(name),
                {key: words for key in mutant.checks if key not in unchecked}, unchecked=unchecked)


def decides_training(case: Case) -> bool:
    """Whether the tests' budget decides a training check of ``case`` (lost or kept).

    If not, a whole grade would judge no more than its unit checks, which ``grade.check_units``
    judges without training.
    """
    return bool(TRAINED_MODEL_KEYS - case.unchecked)


def population_cases() -> tuple[Case, ...]:
    trained = [name for name, mutant in sorted(population.mutants().items())
               if TRAINED_MODEL_KEYS & set(mutant.checks)]
    cases = [population_case(name) for name in [SLOWEST_MEMBER, FLAT_DECODER, *trained]]
    return tuple(case for case in cases if decides_training(case))


POPULATION = population_cases()
CASES_BY_NAME = {case.name: case for case in CASES + BUGS + POPULATION}
REFERENCE = Case("reference", "reference", "the reference solution", lambda ctx: reference())


def one_batch_of_long_epochs(ctx: Context) -> Files:
    # The train_vae check calls train_vae on 8 batches; the grader's training epochs are longer.
    return replace(reference(), "assignment.py", TRAIN_VAE_START,
                   "    if len(train_loader) > 8:\n        train_loader = train_loader.take(1)\n" + TRAIN_VAE_START)


# A deliberately broken case, not part of the suite: it loses both training checks without a word of
# warning, and is judged as a case that must keep every check, so the suite must report it.
SABOTAGED = Case("sabotaged", "sabotage", "train_vae trains on one batch of an epoch longer than 8 batches",
                 one_batch_of_long_epochs)


# The reference graded with the real budget and the seed of the stored reference statistics, through the
# Gradescope zip.
REFERENCE_FULL = Case("reference_full", "reference", "the reference solution, graded with the real budget",
                      lambda ctx: reference(), budget="full", through_zip=True)

# The reference graded a second time, in a grader process of its own: the grades must be identical.
REFERENCE_AGAIN = Case("reference_again", "reference", "the reference solution, graded again", lambda ctx: reference())


def eager_only_call(ctx: Context) -> Files:
    """An eager training loop whose VAE calls ``.numpy()`` in ``call``: correct, but it cannot be traced."""
    files = {path.name: path.read_text() for path in (REPO_DIR / "tests" / "submissions" / "eager").glob("*.py")}
    return replace(files, "vae.py", "    def call(self, x):\n        h = self.encoder(x)",
                   "    def call(self, x):\n        h = self.encoder(tf.constant(x.numpy()))")


# Its models cannot be exported: the VAE's checks are scored from its child's own numbers, flagged unverified.
# Its CVAE, trained for the tests' 128 steps, sits at the generation bar (88% of its samples recognised).
UNEXPORTABLE = Case("eager_only_call", "unexportable", "the VAE's call() runs eagerly (.numpy()) and cannot be exported",
                    eager_only_call, unchecked=frozenset(("cvae_generation",)),
                    unverified=frozenset(("train_vae", "vae_training")))


def write_submission(case: Case, folder: Path, context: Context) -> dict[str, str | bytes]:
    """Write the case's files into ``folder``; returns them (a removed file is left out)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: content for name, content in case.build(context).items() if content is not None}
    for name, content in files.items():
        (folder / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return files


# The grader's files, of which nothing may appear in the results or in the grader's output.


def grader_secrets() -> dict[str, str]:
    solution_line = "eps = tf.random.normal(tf.shape(mu), dtype=mu.dtype)"
    if solution_line not in (CODE_DIR / "vae.py").read_text():
        raise ValueError("the reference vae.py no longer holds the line the tests use as a secret")
    return {
        **{f"a line of {path}": (REPO_DIR / path).read_text().splitlines()[0] for path in GRADER_FILES.values()},
        "the classifier's SHA-256": CLASSIFIER_SHA256,
        "a line of the reference solution": solution_line,
    }


# Grading.


@dataclass
class Graded:
    """How grading one submission went, seen from outside the grader."""

    name: str
    seconds: float
    returncode: int | None
    stdout: str
    stderr: str
    results_text: str | None
    files: dict[str, str | bytes]
    survivors: list[int]

    @property
    def results(self) -> dict | None:
        try:
            return json.loads(self.results_text) if self.results_text is not None else None
        except ValueError:
            return None

    @property
    def summary(self) -> dict | None:
        """The report the grader computed, as its process printed it (its last line of output)."""
        lines = self.stdout.strip().splitlines()
        try:
            return json.loads(lines[-1]) if lines else None
        except ValueError:
            return None


def gradescope_layout(root: Path, python: str, env: dict) -> dict:
    """Unpack the built Gradescope zip into ``root/source`` beside ``root/submission`` (Gradescope's
    /autograder layout; ``run_autograder`` writes ``root/results/results.json``); the environment that
    runs its ``run_autograder`` there with ``python`` instead of the venv its ``setup.sh`` makes."""
    from autograder.tools.gradescope import build_zip, unpack

    unpack(build_zip(root / "autograder.zip"), root / "source")
    return dict(env, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=python, VAE_KIT_CACHE_DIR=str(root / "cache"))


def grade_case(case: Case, work: Path, repo_dir: Path, port: int, python: str, env: dict,
               running: set | None = None) -> Graded:
    """Write the case's submission under ``work`` and grade it in a grader process of its own.

    The grader's process is in ``running`` while it runs (for :meth:`Grading.cancel`).
    """
    context = Context(repo_dir, port, marker=f"{secrets.randbelow(10**9) + 10**9}.5")
    folder = work / case.name
    files = write_submission(case, folder / "submission", context)
    results = folder / "results" / "results.json"
    config, seed = (GradeConfig(), DEFAULT_SEED) if case.budget == "full" else (GradeConfig.for_tests(TEST_SEED), TEST_SEED)
    limit = config.total_seconds + RUNNER_GRACE_SECONDS
    if case.through_zip:
        env = gradescope_layout(folder, python, env)
        command = ["bash", str(folder / "source" / "run_autograder"), "--seed", str(seed)]
    else:
        command = [python, "-c", RUNNER, str(folder / "submission"), str(results), str(seed), case.budget]
    began = time.monotonic()
    process = subprocess.Popen(command, cwd=repo_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    running = set() if running is None else running
    running.add(process)
    try:
        stdout, stderr = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    finally:
        running.discard(process)
    seconds = time.monotonic() - began
    survivors = live_processes_with(context.marker)
    for pid in survivors:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    text = results.read_text() if results.is_file() else None
    return Graded(case.name, seconds, process.returncode, stdout, stderr, text, files, survivors)


class Grading:
    """Grades ``cases`` in a thread of its own, so that the caller can go on with other work meanwhile.

    It starts with one worker: the caller's own work keeps the other core busy. :meth:`result`
    widens it to ``workers`` (the caller now only waits) and returns every grade. Cases graded
    ``alone`` wait for that too, since the caller's work must not run beside them; ``idle`` cases
    are graded one at a time in a lane of their own from the start. The longest cases go first, so
    that they overlap with the many short ones.
    """

    def __init__(self, cases: list[Case], work: Path, python: str, workers: int = 2,
                 progress: Callable[[Graded], None] | None = None):
        self.widened = threading.Event()
        self.cancelled = threading.Event()
        self._running: set[subprocess.Popen] = set()
        self._graded: dict[str, Graded] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._grade_all, args=(cases, work, python, workers, progress),
                                        name="grading", daemon=True)
        self._thread.start()

    def result(self) -> dict[str, Graded]:
        """Every case's grade, once all are graded (with every worker from now on)."""
        self.widened.set()
        self._thread.join()
        if self._error is not None:
            raise RuntimeError("grading the cases failed") from self._error
        if self.cancelled.is_set():
            raise RuntimeError("grading the cases was cancelled")
        return self._graded

    def cancel(self) -> None:
        """Stop: no further case starts, the grades in progress are killed."""
        self.cancelled.set()
        self.widened.set()
        for process in list(self._running):
            process.kill()
        self._thread.join()

    def _grade_all(self, cases, work, python, workers, progress) -> None:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        waiting = collections.deque(sorted((case for case in cases if not (case.alone or case.idle)),
                                           key=lambda case: (case.budget != "full", case.group != "runaway")))
        idle = collections.deque(case for case in cases if case.idle and not case.alone)
        try:
            with listening_port() as port:
                def grade_next(queue: collections.deque, first_worker: bool) -> None:
                    if not first_worker:
                        self.widened.wait()
                    while not self.cancelled.is_set():
                        try:
                            case = queue.popleft()
                        except IndexError:
                            return
                        graded = grade_case(case, work, REPO_DIR, port, python, env, self._running)
                        self._graded[case.name] = graded
                        if progress is not None:
                            progress(graded)

                # The idle cases' lane adds almost no load, so it runs from the start beside the workers.
                lanes = [(idle, True)] + [(waiting, index == 0) for index in range(max(1, workers))]
                with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
                    for future in [pool.submit(grade_next, *lane) for lane in lanes]:
                        future.result()
                self.widened.wait()
                waiting.extend(case for case in cases if case.alone)
                grade_next(waiting, True)
        except BaseException as error:  # noqa: BLE001 - handed to the caller by result()
            self._error = error


def grade_cases(cases: list[Case], work: Path, python: str, workers: int = 2,
                progress: Callable[[Graded], None] | None = None) -> dict[str, Graded]:
    """Grade ``cases`` (``workers`` at a time) while a local server listens for the network case."""
    return Grading(cases, work, python, workers, progress).result()


@contextmanager
def listening_port() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that completes connections (it never needs to accept them)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


def platform(python: str) -> dict[str, bool]:
    """What the grader gets here: children as an unprivileged user, an empty network namespace."""
    done = subprocess.run([python, "-c", PLATFORM_PROBE], cwd=REPO_DIR, capture_output=True, text=True,
                          check=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


def runnable(case: Case, available: dict[str, bool]) -> bool:
    return case.needs is None or available.get(case.needs, False)


# Judging.


def evaluate(case: Case, graded: Graded, baseline: dict[str, float]) -> list[str]:
    """Everything that differs from the case's expected outcome; empty when it graded as expected."""
    config = GradeConfig.for_tests(TEST_SEED)
    problems = []
    if graded.returncode != 0:
        problems.append(f"the grader exited with status {graded.returncode}: {graded.stderr[-600:]}")
    if graded.seconds > config.total_seconds:
        problems.append(f"the grader took {graded.seconds:.0f} s, more than its {config.total_seconds:g} s limit")
    if graded.survivors:
        problems.append(f"{len(graded.survivors)} process(es) the submission started outlived the grading")
    data = graded.results
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        return problems + ["no valid results file was written"]
    tests = {test.get("name"): test for test in data["tests"]}
    if [test.get("name") for test in data["tests"]] != [spec.name for spec in CHECKS]:
        return problems + [f"the results do not list the checks: {list(tests)}"]
    for test in data["tests"]:
        if not 0 <= test["score"] <= test["max_score"]:
            problems.append(f"{test['name']}: score {test['score']} outside [0, {test['max_score']}]")
        if test["status"] != ("passed" if test["score"] >= test["max_score"] else "failed"):
            problems.append(f"{test['name']}: status {test['status']} does not match its score")
    if abs(data["score"] - round(sum(test["score"] for test in data["tests"]), 2)) > 1e-9:
        problems.append(f"the score {data['score']} is not the sum of the checks' scores")
    summary = graded.summary
    if summary is None or summary.get("scores") is None:
        problems.append("the grader did not report the scores it computed" +
                        (f" (error: {summary['error']})" if summary else ""))
    elif summary["scores"] != [test["score"] for test in data["tests"]] or summary["score"] != data["score"]:
        problems.append("the results file differs from the report the grader computed")
    else:
        if summary["peak_mb"] > GRADER_MEMORY_MB:
            problems.append(f"the grader's own memory peaked at {summary['peak_mb']:.0f} MB "
                            f"(limit {GRADER_MEMORY_MB} MB)")
    if FORGE_MARKER in graded.results_text:
        problems.append("forged text reached the results")
    own_text = "\n".join(c if isinstance(c, str) else c.decode("latin-1") for c in graded.files.values())
    for description, secret in grader_secrets().items():
        if secret in own_text:
            continue
        for where, text in (("results", graded.results_text), ("grader's output", graded.stdout + graded.stderr)):
            if secret in text:
                problems.append(f"{description} appears in the {where}")
    for spec in CHECKS:
        test = tests[spec.name]
        flagged = bool((test.get("extra_data") or {}).get("unverified"))
        if flagged != (spec.key in case.unverified):
            problems.append(f"{spec.key} is {'' if flagged else 'not '}marked unverified: {test['output'][:300]!r}")
        if spec.key in case.lost:
            words = case.lost[spec.key]
            if test["score"] >= test["max_score"]:
                problems.append(f"{spec.key} kept full marks ({test['score']})")
            if words and not any(word in test["output"] for word in words):
                problems.append(f"{spec.key}: the feedback shows none of {words}: {test['output'][:400]!r}")
        elif spec.key not in case.unchecked and abs(test["score"] - baseline[spec.key]) > 1e-9:
            problems.append(f"{spec.key} scored {test['score']}, the reference {baseline[spec.key]}: "
                            f"{test['output'][:300]!r}")
    if case.output_words and not any(word in data["output"] for word in case.output_words):
        problems.append(f"the results' output shows none of {case.output_words}: {data['output'][:300]!r}")
    return problems


def baseline_scores(graded: Graded) -> dict[str, float]:
    """The reference's score on each check (check key -> score)."""
    data = graded.results
    if data is None:
        raise RuntimeError(f"the reference could not be graded: {graded.stderr[-2000:]}")
    by_name = {test["name"]: test for test in data["tests"]}
    scores = {spec.key: by_name[spec.name]["score"] for spec in CHECKS}
    # Every check, training checks included: a case must keep what the reference earns, and a case that
    # loses a check must lose it against full marks.
    lost = {spec.key: by_name[spec.name]["output"][:300] for spec in CHECKS if scores[spec.key] < spec.points}
    if lost:
        raise RuntimeError(f"the reference (seed {TEST_SEED}) lost {sorted(lost)}, so it cannot serve as the "
                           f"baseline: {lost}")
    return scores
