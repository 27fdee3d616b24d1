"""The sandbox that runs student code: limits, output capture, cleanup and isolation.

Children are tiny ``python -c`` scripts. Tests that need root (another uid,
file permissions, network namespace) are skipped without it; tests of what
happens without root run in a forked child that drops to the unprivileged
user when the tests run as root.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path

import pytest

from autograder.grading.sandbox import (
    SANDBOX_ID_VARIABLE,
    ChildResult,
    Limits,
    _Capture,
    lock_down,
    prepare_workdir,
    run_child,
    unprivileged_user,
)
from helpers import live_processes_with

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root to switch users and namespaces")

FAST = Limits(wall_seconds=20.0, memory_mb=400, address_space_mb=2048, max_processes=32)


def _new_workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    prepare_workdir(path, unprivileged_user())
    return path


@pytest.fixture
def workdir():
    path = _new_workdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def python() -> str:
    """An interpreter the child user can execute.

    As root the child runs as ``nobody``, which cannot use an interpreter that
    lives under a private home folder, so a system interpreter is tried next.
    """
    path = _new_workdir()
    try:
        for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
            if os.path.exists(candidate):
                result = run_child([candidate, "-c", "print('ready')"], path, FAST)
                if result.status == "ok" and "ready" in result.output:
                    return candidate
    finally:
        shutil.rmtree(path, ignore_errors=True)
    pytest.skip("no Python interpreter that the child user may execute")


def run_code(python: str, workdir: Path, code: str, *args: str, limits: Limits = FAST, **kwargs) -> ChildResult:
    return run_child([python, "-c", code, *args], workdir, limits, **kwargs)


def without_root(function) -> None:
    """Call ``function`` as a user other than root.

    When the tests run as root, it runs in a forked child that has become the unprivileged user.
    """
    if not IS_ROOT:
        function()
        return
    ids = unprivileged_user()
    if ids is None:
        pytest.skip("the tests run as root and there is no unprivileged user to become")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(ids[1])
            os.setuid(ids[0])
            function()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged child failed; its traceback is in the output"


def test_ok_run_keeps_stdout_and_stderr(python, workdir):
    result = run_code(python, workdir, "import sys; print('to out'); print('to err', file=sys.stderr)")
    assert result.status == "ok", result
    assert result.returncode == 0
    assert "to out" in result.output and "to err" in result.output
    assert result.peak_rss_mb > 0
    assert result.detail == "finished normally"


def test_nonzero_exit(python, workdir):
    result = run_code(python, workdir, "import sys; sys.exit(3)")
    assert result.status == "exit"
    assert result.returncode == 3
    assert result.detail == "exited with status 3"


def test_os_exit_zero_is_ok(python, workdir):
    result = run_code(python, workdir, "import os; print('bye', flush=True); os._exit(0)")
    assert result.status == "ok"
    assert "bye" in result.output


def test_closing_stdout_and_stderr_early(python, workdir):
    code = "import os, time; print('before', flush=True); os.close(1); os.close(2); time.sleep(0.3)"
    result = run_code(python, workdir, code)
    assert result.status == "ok", result
    assert "before" in result.output


def test_signal_is_reported(python, workdir):
    result = run_code(python, workdir, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert result.status == "signal"
    assert "SIGSEGV" in result.detail


def test_memory_error_exit_counts_as_memory(python, workdir):
    result = run_code(python, workdir, "raise MemoryError")
    assert result.status == "memory"
    assert result.returncode == 1


def test_missing_executable_is_an_error(workdir):
    result = run_child(["/nonexistent/program"], workdir, FAST)
    assert result.status == "error"
    assert result.returncode is None
    assert "could not be started" in result.detail


def test_unknown_user_is_an_error(python, workdir):
    result = run_child([python, "-c", "pass"], workdir, FAST, run_as="no-such-user-here")
    assert result.status == "error"
    assert "there is no user 'no-such-user-here'" in result.detail


def test_minimal_environment_and_private_umask(python, workdir):
    code = (
        "import os, stat\n"
        "open('made.txt', 'w').close()\n"
        "print(sorted(os.environ))\n"
        "print(oct(stat.S_IMODE(os.stat('made.txt').st_mode)))\n"
    )
    result = run_code(python, workdir, code)
    assert result.status == "ok", result
    assert SANDBOX_ID_VARIABLE in result.output
    assert "PYTEST_CURRENT_TEST" not in result.output
    assert "0o600" in result.output


def test_big_file_is_refused(python, workdir):
    code = "open('big.bin', 'wb').write(b'x' * (3 << 20))"
    result = run_code(python, workdir, code, limits=Limits(wall_seconds=20, file_size_mb=1))
    # Python ignores SIGXFSZ, so the write fails with EFBIG instead of a signal.
    assert result.status in ("exit", "signal")
    assert (workdir / "big.bin").stat().st_size <= 1 << 20


@pytest.mark.slow
def test_timeout_kills_a_sleeping_child(python, workdir):
    began = time.monotonic()
    result = run_code(python, workdir, "import time; time.sleep(30)", limits=Limits(wall_seconds=1.0))
    assert result.status == "timeout"
    assert "time limit" in result.detail
    assert time.monotonic() - began < 3.0


@pytest.mark.slow
def test_timeout_kills_an_infinite_loop(python, workdir):
    began = time.monotonic()
    result = run_code(python, workdir, "while True: pass", limits=Limits(wall_seconds=1.0))
    assert result.status == "timeout"
    assert time.monotonic() - began < 3.0


@pytest.mark.slow
def test_cpu_limit(python, workdir):
    result = run_code(python, workdir, "while True: pass", limits=Limits(wall_seconds=10.0, cpu_seconds=1))
    assert result.status == "timeout"
    assert "CPU time" in result.detail


@pytest.mark.slow
def test_memory_hog_is_stopped(python, workdir):
    code = "chunks = []\nwhile True:\n    chunks.append(b'x' * (50 << 20))\n"
    limits = Limits(wall_seconds=20.0, memory_mb=200, address_space_mb=4096)
    began = time.monotonic()
    result = run_code(python, workdir, code, limits=limits)
    assert result.status == "memory", result
    assert "more than 200 MB of memory, the grader's limit" in result.detail and "smaller network" in result.detail
    assert result.peak_rss_mb > 200
    assert time.monotonic() - began < 5.0


@pytest.mark.slow
@pytest.mark.after_pool
def test_fork_bomb_is_bounded_and_cleaned_up(python, workdir):
    marker = f"forkbomb-{uuid.uuid4().hex}"
    code = (
        "import os, time\n"
        "started = 0\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    started += 1\n"
        "print('started', started, flush=True)\n"
        "time.sleep(0.3)\n"
    )
    limits = Limits(wall_seconds=20.0, max_processes=16)
    result = run_code(python, workdir, code, marker, limits=limits)
    assert result.status == "ok", result
    started = int(result.output.split("started")[1].split()[0])
    assert started < 200
    if IS_ROOT:
        assert started < 16
    assert live_processes_with(marker) == []


@pytest.mark.slow
def test_large_output_is_truncated_quickly(python, workdir):
    code = (
        "import sys\n"
        "out = sys.stdout.buffer\n"
        "out.write(b'HEAD-MARK\\n')\n"
        "block = b'y' * (1 << 20)\n"
        "for _ in range(200):\n"
        "    out.write(block)\n"
        "out.write(b'\\nTAIL-MARK\\n')\n"
    )
    limits = Limits(wall_seconds=30.0, output_bytes=4000)
    began = time.monotonic()
    result = run_code(python, workdir, code, limits=limits)
    assert result.status == "ok", result
    assert result.output.startswith("HEAD-MARK")
    assert result.output.endswith("TAIL-MARK\n")
    assert "bytes omitted] ..." in result.output
    assert len(result.output) < 4000 + 100
    assert time.monotonic() - began < 15.0


# Both daemons double-fork and leave the session. One closes its output but
# keeps the inherited environment; the other keeps the output pipe but
# re-executes itself with an empty environment.
DAEMON_CLOSES_OUTPUT = """
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
time.sleep(60)
"""
DAEMON_CLEARS_ENVIRONMENT = """
os.execve(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', sys.argv[1]], {})
"""


@pytest.mark.slow
@pytest.mark.parametrize("daemon", [DAEMON_CLOSES_OUTPUT, DAEMON_CLEARS_ENVIRONMENT], ids=["closes-output", "clears-env"])
@pytest.mark.parametrize("run_as", ["auto", None])
def test_daemonized_grandchild_does_not_survive(python, workdir, run_as, daemon):
    marker = f"daemon-{uuid.uuid4().hex}"
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        + "".join(f"        {line}\n" for line in daemon.strip().splitlines())
        + "    os._exit(0)\n"
        "os.wait()\n"
    )
    began = time.monotonic()
    result = run_code(python, workdir, code, marker, run_as=run_as)
    assert result.status == "ok", result
    assert live_processes_with(marker) == []
    assert time.monotonic() - began < 2.0


@needs_root
def test_child_runs_as_another_user(python, workdir):
    result = run_code(python, workdir, "import os; print(os.getuid(), os.geteuid(), os.getgroups())")
    assert result.status == "ok", result
    uid, _ = unprivileged_user()
    assert result.output.split()[:2] == [str(uid), str(uid)]
    assert int(result.output.split()[0]) != os.getuid()


@needs_root
def test_child_cannot_kill_the_grader(python, workdir):
    result = run_code(python, workdir, "import os, signal; os.kill(os.getppid(), signal.SIGKILL)")
    assert result.status == "exit"
    assert "PermissionError" in result.output


@needs_root
def test_locked_down_files_are_unreadable(python, workdir):
    secret_dir = Path(tempfile.mkdtemp(prefix="sandbox-secret-"))
    try:
        secret_dir.chmod(0o755)
        secret = secret_dir / "answers.txt"
        secret.write_text("the answers")
        secret.chmod(0o644)
        lock_down([secret_dir, secret, secret_dir / "missing"])
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert stat.S_IMODE(secret_dir.stat().st_mode) == 0o700
        code = "import sys; print(open(sys.argv[1]).read())"
        result = run_code(python, workdir, code, str(secret))
        assert result.status == "exit"
        assert "PermissionError" in result.output
        assert "the answers" not in result.output
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)


@needs_root
def test_network_is_isolated(python, workdir):
    code = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2); print('connected')"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        port = str(server.getsockname()[1])
        isolated = run_code(python, workdir, code, port)
        shared = run_code(python, workdir, code, port, isolate_network=False)
    assert isolated.status == "exit", isolated
    assert "connected" not in isolated.output
    assert shared.status == "ok", shared
    assert "connected" in shared.output


def test_prepare_workdir_makes_a_private_folder(tmp_path):
    folder = tmp_path / "sandbox"
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "file.txt").write_text("x")
    (folder / "link").symlink_to("/etc/passwd")
    owner = unprivileged_user()
    prepare_workdir(folder, owner)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    if owner is not None:
        assert (folder / "inner" / "file.txt").stat().st_uid == owner[0]
        assert os.lstat(folder / "link").st_uid == owner[0]
        assert os.stat("/etc/passwd").st_uid == 0


def test_lock_down_without_root_changes_nothing(workdir):
    target = workdir / "file.txt"
    target.write_text("x")
    target.chmod(0o644)
    if IS_ROOT and unprivileged_user() is not None:
        # The file belongs to the user the child becomes, so a chmod would succeed there: only
        # lock_down's own check of the uid can leave the mode as it is.
        os.chown(target, *unprivileged_user())
    without_root(lambda: lock_down([target]))
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_capture_keeps_head_and_tail():
    capture = _Capture(10)
    for piece in (b"abc", b"defgh", b"ijklmnop", b"qrstuvwxyz"):
        capture.feed(piece)
    assert capture.text() == "abcde\n... [16 bytes omitted] ...\nvwxyz"
    small = _Capture(100)
    small.feed(b"short")
    assert small.text() == "short"


def test_available_cpus_reads_the_cgroup_cpu_quota(tmp_path):
    """Inside a cgroup with a quota of half a CPU, a process sees 0.5 CPUs (Gradescope's default box)."""
    import subprocess

    from autograder.grading.grade import thread_settings
    from autograder.grading.sandbox import available_cpus

    assert available_cpus() <= len(os.sched_getaffinity(0))
    assert thread_settings(float(len(os.sched_getaffinity(0)))) == {}
    assert thread_settings(0.5)["TF_NUM_INTRAOP_THREADS"] == "1"
    group = Path("/sys/fs/cgroup/cpu") / f"vae-kit-test-{uuid.uuid4().hex[:8]}"
    if os.geteuid() != 0 or not (group.parent / "cpu.cfs_quota_us").exists():
        pytest.skip("needs root and the cgroup v1 cpu hierarchy")
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text("50000")
        code = "from autograder.grading.sandbox import available_cpus; print(available_cpus())"
        done = subprocess.run(["sh", "-c", f'echo $$ > {group}/tasks && exec "$@"', "sh", sys.executable, "-c",
                               code], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[1])
        assert float(done.stdout) == 0.5
    finally:
        group.rmdir()


def _in_a_box(memory_mb: int, grader: str):
    """Run the Python code ``grader`` in a box of 2 CPUs and ``memory_mb`` (a cgroup, as a container is):
    its output and the number of processes the box's out-of-memory killer stopped."""
    import importlib.util
    import subprocess

    spec = importlib.util.spec_from_file_location("box", Path(__file__).resolve().parents[1] / "bench" / "box.py")
    box = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(box)
    try:
        with box.Box(box.BoxSize(2.0, memory_mb)) as limited:
            done = subprocess.run(limited.wrap([sys.executable, "-c", grader]), capture_output=True, text=True,
                                  timeout=120)
            return done, limited.oom_kills()
    except box.BoxError as error:
        pytest.skip(str(error))


def _hog(pause: float) -> str:
    """A child that fills memory, 20 MB at a time with ``pause`` seconds between (1 GB/s at 0.02)."""
    return f"import time\nchunks = []\nwhile True:\n    chunks.append(b'x' * (20 * 2**20))\n    time.sleep({pause})\n"


def _grader_of_a_hog(python: str, workdir: Path, before: str = "", pause: float = 0.02,
                     reserve_mb: int | None = None) -> str:
    """A grader that runs ``before``, then a child that fills memory, and prints the child's result as JSON.

    ``reserve_mb``: ``Limits.container_reserve_mb`` (None: the container's out-of-memory killer acts).
    """
    return (
        "import json, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        "from autograder.grading.sandbox import Limits, run_child\n"
        + before +
        f"result = run_child([{python!r}, '-c', {_hog(pause)!r}], {str(workdir)!r}, "
        f"Limits(wall_seconds=60, memory_mb=4000, address_space_mb=None, container_reserve_mb={reserve_mb!r}))\n"
        "print(json.dumps({'status': result.status, 'detail': result.detail, 'peak': result.peak_rss_mb}))\n")


@pytest.mark.slow
def test_a_child_stopped_by_the_containers_memory_limit_is_told_so(python, workdir):
    """In a box of 300 MB, the kernel's out-of-memory killer stops a child long before the grader's own
    4,000 MB limit: the result says memory, the box's limit and the child's use. (The child grows faster
    than the grader's guard, ``container_reserve_mb``, looks; here it is off.)"""
    import json

    done, oom_kills = _in_a_box(300, _grader_of_a_hog(python, workdir))
    assert oom_kills >= 1, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "memory", result
    assert "memory limit of the machine that grades it (300 MB" in result["detail"], result
    assert 100 < result["peak"] <= 300 and f"had used {result['peak']:.0f} MB" in result["detail"], result


def test_a_child_makes_itself_the_out_of_memory_killers_first_choice(python, workdir):
    result = run_code(python, workdir, "print(open('/proc/self/oom_score_adj').read())")
    assert result.status == "ok" and result.output.split() == ["1000"], result


@pytest.mark.slow
def test_the_out_of_memory_killer_stops_the_child_and_not_the_larger_grader(python, workdir):
    """The grader holds 250 MB in a box of 400 MB, the largest process when its child fills the rest: the
    killer must stop the child (the grader would write no results), so the grader reports the run."""
    import json

    done, oom_kills = _in_a_box(400, _grader_of_a_hog(python, workdir, _ballast(250)))
    assert oom_kills >= 1 and done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "memory", result


def _ballast(mb: int) -> str:
    """Code that makes the grader hold ``mb`` MB of anonymous memory."""
    return f"ballast = bytearray({mb} * 2**20)\nballast[::4096] = b'x' * len(ballast[::4096])\n"


@pytest.mark.slow
def test_the_grader_stops_a_child_before_the_container_must(python, workdir):
    """The grader holds 150 MB in a box of 400 MB; a child fills the rest at 100 MB/s. The grader stops it
    once the box's unreclaimable memory is within 64 MB of the limit: no out-of-memory kill at all (the
    killer might have taken the grader), and the result names the box's limit and what the child held."""
    import json
    import re

    done, oom_kills = _in_a_box(400, _grader_of_a_hog(python, workdir, _ballast(150), pause=0.2, reserve_mb=64))
    assert oom_kills == 0 and done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "memory", result
    assert "memory limit of the machine that grades it (400 MB" in result["detail"], result
    held = float(re.search(r"had used (\d+) MB", result["detail"]).group(1))
    # The box's 400 MB less the grader's 150 and the reserve, within what the child adds between two looks.
    assert 120 < held <= 400 - 150 - 64 + 40, result


def test_the_memory_cgroups_files_are_read_in_both_versions(tmp_path):
    from autograder.grading.sandbox import MemoryCgroup

    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    v1.mkdir()
    v2.mkdir()
    (v1 / "memory.limit_in_bytes").write_text(f"{768 * 2**20}\n")
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    (v2 / "memory.max").write_text("max\n")
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert (MemoryCgroup(v1, 1).limit_mb(), MemoryCgroup(v1, 1).oom_kills()) == (768, 3)
    assert (MemoryCgroup(v2, 2).limit_mb(), MemoryCgroup(v2, 2).oom_kills()) == (None, 1)
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert MemoryCgroup(v1, 1).limit_mb() is None
    assert MemoryCgroup(tmp_path / "absent", 2).oom_kills() is None


def test_a_grade_in_a_container_below_the_recommended_memory_says_so(tmp_path, monkeypatch):
    from autograder.config import GradeConfig
    from autograder.grading import grade
    from autograder.grading.sandbox import MemoryCgroup

    (tmp_path / "memory.limit_in_bytes").write_text(f"{768 * 2**20}\n")
    monkeypatch.setattr(grade, "memory_cgroup", lambda: MemoryCgroup(tmp_path, 1))
    machine, warnings = grade.machine_report(GradeConfig())
    assert machine["memory_mb"] == 768 and machine["cpus"] > 0
    assert len(warnings) == 1 and "768 MB, below the 2048 MB" in warnings[0]
    (tmp_path / "memory.limit_in_bytes").write_text(f"{4096 * 2**20}\n")
    assert grade.machine_report(GradeConfig())[1] == []
