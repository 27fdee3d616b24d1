"""Run untrusted student code in a child process with limits.

The grader never runs student code in its own process. :func:`run_child` starts
the code in a new session with resource limits, watches its time and memory,
keeps a bounded amount of its output and, when it ends, kills every process it
left behind.

What holds depends on whether the grader runs as root:

* Always: the wall-clock limit, the memory watchdog, the process-count
  watchdog (``RLIMIT_NPROC`` does not bind root), ``RLIMIT_AS``,
  ``RLIMIT_NPROC``, ``RLIMIT_FSIZE``, ``RLIMIT_CPU``, no core files, bounded
  output, and the cleanup of the child's session, of its descendants and of
  every process that still carries the child's sandbox id in its environment.
* As root only: the child runs as an unprivileged user (``nobody``), so it
  cannot signal the grader, read files that :func:`lock_down` closed, or
  raise its limits; it gets an empty network namespace (no network, not even
  the grader's loopback); and a final sweep kills every process of that user
  once no child of that user runs anywhere on the machine (graders share a
  lock for this, so one grader's sweep never kills another grader's child).
* Without root the child runs as the grader's own user: it can read whatever
  the grader can read, use the network, and kill the grader. A process that
  daemonizes, closes its inherited output, clears its environment and
  re-executes itself before the watchdog sees it can outlive the run.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import os
import pwd
import resource
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ChildResult",
    "available_cpus",
    "Limits",
    "MemoryCgroup",
    "memory_cgroup",
    "SANDBOX_ID_VARIABLE",
    "lock_down",
    "network_isolation_available",
    "prepare_workdir",
    "run_child",
    "unprivileged_user",
]

#: Environment variable that carries a random id for each child; descendants
#: inherit it, which lets the cleanup find processes that left the session.
SANDBOX_ID_VARIABLE = "AUTOGRADER_SANDBOX_ID"

_DEDICATED_USER = "nobody"
_POLL_SECONDS = 0.15
_KILL_SECONDS = 3.0
_PIPE_GRACE_SECONDS = 0.2
_READER_JOIN_SECONDS = 2.0
_CHUNK_BYTES = 1 << 20
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_MB = 1024 * 1024
# When a container runs out of memory, the kernel's out-of-memory killer stops the process with the
# highest score (about its memory), which oom_score_adj shifts: 1000 makes a process the first choice.
_OOM_SCORE_ADJ_PATH = "/proc/self/oom_score_adj"
_CHILD_OOM_SCORE_ADJ = 1000
# Held shared by every running child of the dedicated user, by every grader on the
# machine, and taken exclusively for the sweep of that user's processes. It lives
# where only root may create files, so the dedicated user cannot hold it.
_SWEEP_LOCK_PATH = "/run/autograder-sandbox.lock"

try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
    _UNSHARE = _LIBC.unshare
    _UNSHARE.argtypes = [ctypes.c_int]
    _PRCTL = _LIBC.prctl
    _PRCTL.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
except (OSError, AttributeError):
    _LIBC = None

# Children that are running right now in this process; the per-user sweep
# only runs when no other child of the dedicated user, here or in another
# grader (see _SWEEP_LOCK_PATH), could be hit by it.
_ACTIVE_LOCK = threading.Lock()
_active_children = 0


@dataclass(frozen=True)
class Limits:
    """Limits for one child process (and everything it starts)."""

    wall_seconds: float = 120.0
    memory_mb: int = 1200
    address_space_mb: int | None = 8192
    max_processes: int = 64
    output_bytes: int = 64_000
    file_size_mb: int = 256
    cpu_seconds: int | None = None
    # Inside a container with a memory limit, the child is stopped once the container's unreclaimable
    # memory (anonymous and shared pages, the grader's included) comes closer than this to the limit:
    # the grader stops it before the container's out-of-memory killer must act, which may take the
    # grader itself. None: leave it to the killer.
    container_reserve_mb: int | None = 64


@dataclass
class ChildResult:
    """How a child ended.

    ``status`` is one of ``"ok"``, ``"exit"``, ``"signal"``, ``"timeout"``,
    ``"memory"``, ``"processes"`` or ``"error"`` (could not start); ``detail``
    says the same in one sentence for feedback to the student.
    """

    status: str
    returncode: int | None
    seconds: float
    output: str
    peak_rss_mb: float
    detail: str


def unprivileged_user() -> tuple[int, int] | None:
    """The uid and gid of ``nobody`` when running as root, else ``None``."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(_DEDICATED_USER)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


@functools.cache
def network_isolation_available() -> bool:
    """Whether children get an empty network namespace here: it takes root and a platform that allows it.

    Where it does not, children share the grader's network; the grader logs that.
    """
    if _LIBC is None or os.geteuid() != 0:
        return False
    pid = os.fork()
    if pid == 0:
        os._exit(0 if _UNSHARE(_CLONE_NEWNET) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def prepare_workdir(path: Path, owner: tuple[int, int] | None) -> None:
    """Create ``path`` if needed, give it to ``owner`` (recursively) and make it private (0700).

    Symbolic links are re-owned themselves and never followed, so a link in the
    folder cannot hand a grader file to the child user.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        uid, gid = owner
        os.chown(path, uid, gid, follow_symlinks=False)
        for top, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(top, name), uid, gid, follow_symlinks=False)
    os.chmod(path, 0o700)


def lock_down(paths: list[Path]) -> None:
    """Make grader files unreadable for other users (``chmod go-rwx``) when running as root.

    Directories only lose the permissions on themselves, which already stops
    other users from listing or entering them. Paths that do not exist are
    skipped. Without root this does nothing: children then run as the
    grader's own user and can read everything the grader can read.
    """
    if os.geteuid() != 0:
        return
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            continue
        os.chmod(path, mode & ~0o077 & 0o7777)


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    sid: int
    state: bytes
    start: int
    rss_pages: int


def _read_proc(pid: int) -> _Proc | None:
    """Parse ``/proc/<pid>/stat``; ``None`` when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
        # The command name may contain spaces and parentheses, so the fields
        # after it are found from the last closing parenthesis; field n of
        # proc(5) is then rest[n - 3].
        rest = data[data.rindex(b")") + 2 :].split()
        return _Proc(pid, int(rest[1]), int(rest[3]), rest[0], int(rest[19]), int(rest[21]))
    except (OSError, ValueError, IndexError):
        return None


def _all_pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _real_uid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _tasks_of_uid(uid: int) -> int:
    """How many threads the user runs now (what ``RLIMIT_NPROC`` counts)."""
    count = 0
    for pid in _all_pids():
        try:
            with open(f"/proc/{pid}/status", "rb") as handle:
                text = handle.read()
        except OSError:
            continue
        owner = threads = None
        for line in text.splitlines():
            if line.startswith(b"Uid:"):
                owner = int(line.split()[1])
            elif line.startswith(b"Threads:"):
                threads = int(line.split()[1])
        if owner == uid:
            count += threads or 1
    return count


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Tracker:
    """Finds the processes that belong to one child.

    A process belongs to the child when it is in the child's session, has a
    parent that belongs to it, or carries the child's sandbox id in its
    environment. Processes are keyed by pid and start time so that a reused
    pid is never mistaken for a member.
    """

    def __init__(self, child: _Proc, token: bytes) -> None:
        self.sid = child.pid
        self.start = child.start
        self.needle = f"{SANDBOX_ID_VARIABLE}=".encode() + token
        self.members: dict[int, int] = {child.pid: child.start}
        self.strangers: set[tuple[int, int]] = set()
        self.lock = threading.Lock()
        self.own_pid = os.getpid()

    def _has_token(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                return self.needle in handle.read().split(b"\0")
        except OSError:
            return False

    def scan(self) -> list[_Proc]:
        """The child's processes that are still alive (zombies excluded)."""
        with self.lock:
            procs = [p for p in map(_read_proc, _all_pids()) if p is not None]
            members: dict[int, _Proc] = {}
            pending: list[_Proc] = []
            for proc in procs:
                key = (proc.pid, proc.start)
                if self.members.get(proc.pid) == proc.start:
                    members[proc.pid] = proc
                elif key in self.strangers or proc.start < self.start or proc.pid == self.own_pid:
                    self.strangers.add(key)
                elif proc.sid == self.sid or self._has_token(proc.pid):
                    members[proc.pid] = proc
                else:
                    pending.append(proc)
            grew = True
            while grew and pending:
                grew = False
                for proc in list(pending):
                    if proc.ppid in members:
                        members[proc.pid] = proc
                        pending.remove(proc)
                        grew = True
            self.strangers.update((p.pid, p.start) for p in pending)
            live_keys = {(p.pid, p.start) for p in procs}
            self.strangers &= live_keys
            self.members = {pid: proc.start for pid, proc in members.items()}
            return [p for p in members.values() if p.state != b"Z"]

    def adopt_pipe_holders(self, inode: int) -> None:
        """Make members of processes, started since the child, that hold the output pipe.

        This finds a daemon that left the session and cleared its environment
        but kept the inherited stdout. Only processes of this run's era are
        examined, so the scan stays short.
        """
        target = f"pipe:[{inode}]"
        with self.lock:
            for proc in map(_read_proc, _all_pids()):
                if proc is None or proc.start < self.start or proc.pid == self.own_pid:
                    continue
                try:
                    fds = os.listdir(f"/proc/{proc.pid}/fd")
                    holds = any(os.readlink(f"/proc/{proc.pid}/fd/{fd}") == target for fd in fds)
                except OSError:
                    continue
                if holds:
                    self.strangers.discard((proc.pid, proc.start))
                    self.members[proc.pid] = proc.start

    def kill_all(self) -> None:
        """SIGKILL the child's session and every member until none is left (bounded)."""
        deadline = time.monotonic() + _KILL_SECONDS
        pause = 0.005
        while True:
            try:
                os.killpg(self.sid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            live = self.scan()
            for proc in live:
                _kill(proc.pid)
            if not live or time.monotonic() > deadline:
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


def _sweep_user(uid: int) -> None:
    """Kill every process whose real uid is ``uid`` (bounded number of rounds)."""
    deadline = time.monotonic() + _KILL_SECONDS
    while True:
        victims = [pid for pid in _all_pids() if _real_uid(pid) == uid]
        live = [pid for pid in victims if (p := _read_proc(pid)) is not None and p.state != b"Z"]
        for pid in live:
            _kill(pid)
        if not live or time.monotonic() > deadline:
            return
        time.sleep(0.02)


class _Capture:
    """Keeps the first and the last half of a stream and counts what lies between."""

    def __init__(self, limit: int) -> None:
        self.head_limit = max(limit, 0) // 2
        self.tail_limit = max(limit, 0) - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        with self.lock:
            self.total += len(chunk)
            room = self.head_limit - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk and self.tail_limit:
                self.tail += chunk
                # Trimming only once the buffer doubles keeps the cost per byte constant.
                if len(self.tail) > 2 * self.tail_limit:
                    del self.tail[: len(self.tail) - self.tail_limit]

    def text(self) -> str:
        with self.lock:
            tail = bytes(self.tail[len(self.tail) - self.tail_limit :]) if self.tail_limit else b""
            omitted = self.total - len(self.head) - len(tail)
            head = bytes(self.head)
        if omitted <= 0:
            return (head + tail).decode("utf-8", errors="replace")
        return (
            head.decode("utf-8", errors="replace")
            + f"\n... [{omitted} bytes omitted] ...\n"
            + tail.decode("utf-8", errors="replace")
        )


def _read_output(fd: int, capture: _Capture) -> None:
    try:
        while True:
            chunk = os.read(fd, _CHUNK_BYTES)
            if not chunk:
                return
            capture.feed(chunk)
    except OSError:
        return
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


def _anon_bytes(pid: int) -> int:
    """The resident memory of ``pid`` that is not file-backed (resident less shared in ``statm``)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            fields = handle.read().split()
        return max(int(fields[1]) - int(fields[2]), 0) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


class _Watchdog:
    """Enforces the wall-clock, memory and process-count limits from a background thread.

    ``container``: the memory cgroup the grader runs in and the unreclaimable memory (MB) at which the
    child is stopped (``Limits.container_reserve_mb`` below the cgroup's limit).
    """

    def __init__(self, tracker: _Tracker, limits: Limits, deadline: float,
                 container: tuple[MemoryCgroup, float] | None = None) -> None:
        self.tracker = tracker
        self.limit_bytes = limits.memory_mb * _MB
        self.max_processes = limits.max_processes
        self.deadline = deadline
        self.container = container
        self.reason: str | None = None
        self.peak_bytes = 0
        # The child's peak of memory that is not file-backed: what it held of a container's limit.
        self.peak_anon_bytes = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sandbox-watchdog", daemon=True)

    def _run(self) -> None:
        while True:
            try:
                if time.monotonic() >= self.deadline:
                    self.reason = "timeout"
                    self.tracker.kill_all()
                    return
                live = self.tracker.scan()
                rss = sum(p.rss_pages for p in live) * _PAGE_BYTES
                self.peak_bytes = max(self.peak_bytes, rss)
                # RLIMIT_NPROC does not bind a child that runs as root, so the
                # processes are counted here too. The count comes first: many
                # small processes also add up to a lot of memory.
                if len(live) > self.max_processes:
                    self.reason = "processes"
                    self.tracker.kill_all()
                    return
                if rss > self.limit_bytes:
                    self.reason = "memory"
                    self.tracker.kill_all()
                    return
                if self.container is not None:
                    self.peak_anon_bytes = max(self.peak_anon_bytes, sum(_anon_bytes(p.pid) for p in live))
                    held = self.container[0].unreclaimable_mb()
                    if held is not None and held > self.container[1]:
                        self.reason = "container"
                        self.tracker.kill_all()
                        return
            except Exception:  # noqa: BLE001 - the watchdog must keep enforcing the deadline.
                pass
            wait = min(_POLL_SECONDS, max(self.deadline - time.monotonic(), 0.0))
            if self.stop.wait(wait):
                return


def _read_quota(folder: Path, version: int) -> tuple[str, str] | None:
    """(quota, period) of the cgroup ``folder``; quota is "max" or "-1" when unlimited."""
    try:
        if version == 2:
            quota, period = (folder / "cpu.max").read_text().split()
            return quota, period
        return ((folder / "cpu.cfs_quota_us").read_text().strip(),
                (folder / "cpu.cfs_period_us").read_text().strip())
    except (OSError, ValueError):
        return None


def _own_cgroups(controller: str) -> list[tuple[Path, int]]:
    """Where this process's cgroup of ``controller`` may be, in order, each with its cgroup version.

    The path ``/proc/self/cgroup`` names under each hierarchy, then the hierarchy's root (a container
    sees its own cgroup there); cgroup v2 at ``/sys/fs/cgroup`` or, on a hybrid system, its
    ``unified`` mount.
    """
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            roots, version = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")), 2
        elif controller in controllers.split(","):
            roots, version = (Path("/sys/fs/cgroup") / controllers,), 1
        else:
            continue
        found += [(folder, version) for root in roots for folder in (root / path.lstrip("/"), root)]
    return found


def _cgroup_cpu_quota() -> float | None:
    """The CPUs this process's cgroup may use (its CFS quota over its period), or None when unlimited.

    Reads cgroup v2's ``cpu.max`` or v1's ``cpu.cfs_quota_us`` (``_own_cgroups``).
    """
    for folder, version in _own_cgroups("cpu"):
        found = _read_quota(folder, version)
        if found is not None and found[0] not in ("max", "-1"):
            return int(found[0]) / int(found[1])
    return None


@dataclass(frozen=True)
class MemoryCgroup:
    """The memory cgroup this process is charged to (a container's limit), v2 or v1."""

    folder: Path
    version: int

    @property
    def events_file(self) -> Path:
        """The file whose ``oom_kill`` line counts the processes the out-of-memory killer stopped."""
        return self.folder / ("memory.events" if self.version == 2 else "memory.oom_control")

    def oom_kills(self) -> int | None:
        """How many processes the kernel's out-of-memory killer has stopped in it, or None if unknown."""
        try:
            lines = self.events_file.read_text().splitlines()
        except OSError:
            return None
        return next((int(line.split()[1]) for line in lines if line.startswith("oom_kill ")), None)

    def unreclaimable_mb(self) -> float | None:
        """The memory charged to it that no reclaim can free: anonymous and shared (tmpfs) pages, in MB."""
        try:
            lines = (self.folder / "memory.stat").read_text().splitlines()
        except OSError:
            return None
        stat = dict(line.split(maxsplit=1) for line in lines if " " in line)
        # v1's total_ counters include the cgroups below this one; v2's counters always do.
        names = ("anon", "shmem") if self.version == 2 else ("total_rss", "total_shmem")
        try:
            return sum(int(stat[name]) for name in names) / _MB
        except (KeyError, ValueError):
            return None

    def limit_mb(self) -> float | None:
        """Its memory limit in MB, or None when unlimited or unknown."""
        try:
            text = (self.folder / ("memory.max" if self.version == 2 else "memory.limit_in_bytes")).read_text()
        except OSError:
            return None
        value = text.strip()
        # cgroup v1 writes "no limit" as a number near 2**63.
        return None if value == "max" or not value.isdigit() or int(value) >= 2**60 else int(value) / _MB


def memory_cgroup() -> MemoryCgroup | None:
    """This process's memory cgroup, where the files that count its out-of-memory kills can be read."""
    found = (MemoryCgroup(folder, version) for folder, version in _own_cgroups("memory"))
    return next((cgroup for cgroup in found if cgroup.events_file.is_file()), None)


def available_cpus() -> float:
    """The CPUs this process can use: its affinity, capped by its cgroup's CPU quota."""
    cores = float(len(os.sched_getaffinity(0)))
    quota = _cgroup_cpu_quota()
    return min(cores, quota) if quota else cores


def _default_env(cwd: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(cwd),
        "TMPDIR": str(cwd),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }


def _resolve_user(run_as: str | None) -> tuple[int, int] | None:
    """uid/gid to switch to, or ``None`` to keep the grader's; raises ``LookupError``."""
    if run_as is None:
        return None
    if run_as == "auto":
        return unprivileged_user()
    try:
        entry = pwd.getpwnam(run_as)
    except KeyError:
        raise LookupError(f"there is no user {run_as!r}") from None
    if entry.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise LookupError(f"cannot run as {run_as!r} without root")
    return entry.pw_uid, entry.pw_gid


def _rlimits(limits: Limits, ids: tuple[int, int] | None) -> list[tuple[int, tuple[int, int]]]:
    """The (resource, (soft, hard)) pairs to set, clamped to what this process may set."""
    wanted: list[tuple[int, int]] = [
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * _MB),
    ]
    if limits.address_space_mb is not None:
        wanted.append((resource.RLIMIT_AS, limits.address_space_mb * _MB))
    if limits.cpu_seconds is not None:
        wanted.append((resource.RLIMIT_CPU, limits.cpu_seconds))
    # RLIMIT_NPROC counts every thread of the user, not just the child's, so
    # the child gets max_processes on top of what its user already runs.
    uid = ids[0] if ids is not None else os.getuid()
    baseline = 0 if uid == 0 else _tasks_of_uid(uid)
    wanted.append((resource.RLIMIT_NPROC, baseline + limits.max_processes))
    # The limits are set after the uid change, when they can only go down,
    # so each is clamped to the grader's own hard limit.
    pairs = []
    for res, value in wanted:
        _, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        soft_hard = (value, value)
        if res == resource.RLIMIT_CPU and (hard == resource.RLIM_INFINITY or value < hard):
            # The soft limit sends SIGXCPU; the hard one a second later SIGKILL.
            soft_hard = (value, value + 1)
        pairs.append((res, soft_hard))
    # RLIMIT_AS goes last: once it is set, the child (which still has the
    # grader's address space until exec) may be unable to allocate.
    pairs.sort(key=lambda pair: pair[0] == resource.RLIMIT_AS)
    return pairs


def _make_preexec(
    rlimits: list[tuple[int, tuple[int, int]]],
    isolate_network: bool,
    ids: tuple[int, int] | None,
):
    """Build the function that runs in the child between fork and exec.

    Everything is computed here, in the grader, so the child only makes
    system calls. The order matters: the network namespace needs privileges
    that are gone once the uid changes, a uid change resets the parent-death
    signal, and the limits come last because the address-space limit can make
    any further allocation in the forked grader image fail.
    """
    setrlimit = resource.setrlimit
    parent_pid = os.getpid()
    unshare = _UNSHARE if _LIBC is not None and isolate_network and os.geteuid() == 0 else None
    prctl = _PRCTL if _LIBC is not None else None
    sigkill = int(signal.SIGKILL)
    oom_score_adj = str(_CHILD_OOM_SCORE_ADJ).encode()

    def preexec() -> None:
        # The child, not the grader, is the one the container's out-of-memory killer stops: a grader it
        # stops writes no results. Before the uid changes: a process that changed its uid may no longer
        # write its /proc files. Raising the score needs no privilege; where /proc is missing, it stays.
        try:
            fd = os.open(_OOM_SCORE_ADJ_PATH, os.O_WRONLY)
            try:
                os.write(fd, oom_score_adj)
            finally:
                os.close(fd)
        except OSError:
            pass
        if unshare is not None:
            unshare(_CLONE_NEWNET)
        if ids is not None:
            os.setgroups([])
            os.setgid(ids[1])
            os.setuid(ids[0])
        if prctl is not None:
            prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            prctl(_PR_SET_PDEATHSIG, sigkill, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(125)
        os.umask(0o077)
        for res, value in rlimits:
            setrlimit(res, value)

    return preexec


def signal_name(number: int) -> str:
    """The name of signal ``number`` ("SIGKILL"), or "signal N" for one Python does not name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _ended_with_memory_error(output: str) -> bool:
    lines = [line for line in output.splitlines() if line.strip()]
    return bool(lines) and lines[-1].startswith("MemoryError")


def _classify(
    returncode: int | None,
    reason: str | None,
    limits: Limits,
    output: str,
    cpu_seconds_used: float | None,
    container: tuple[float | None, float] | None = None,
) -> tuple[str, str]:
    """Status and one-sentence detail for a child that ran.

    ``container``: (the container's memory limit, the child's peak) in MB, when the container's
    out-of-memory killer stopped a process while the child ran, or the watchdog stopped the child
    before it had to (``reason`` "container").
    """
    if returncode is None:
        return "error", "ended, but its exit status could not be collected"
    killed = returncode < 0
    if killed and reason == "timeout":
        return "timeout", f"ran past its {limits.wall_seconds:g} s time limit and was stopped"
    if killed and reason == "memory":
        return "memory", (f"used more than {limits.memory_mb} MB of memory, the grader's limit for one run, and was "
                          "stopped (a smaller network needs less memory)")
    if killed and reason == "container" and container is not None:
        return "memory", container_memory_detail(*container)
    if killed and reason == "processes":
        return "processes", f"started more than {limits.max_processes} processes and was stopped"
    if returncode == 0:
        return "ok", "finished normally"
    if killed:
        number = -returncode
        cpu_exceeded = (
            limits.cpu_seconds is not None
            and cpu_seconds_used is not None
            and cpu_seconds_used >= limits.cpu_seconds
        )
        if number == signal.SIGXCPU or (number == signal.SIGKILL and cpu_exceeded):
            return "timeout", f"used more than {limits.cpu_seconds} s of CPU time and was stopped"
        if number == signal.SIGKILL and container is not None:
            return "memory", container_memory_detail(*container)
        if number == signal.SIGXFSZ:
            return "signal", f"wrote a file larger than {limits.file_size_mb} MB and was stopped"
        return "signal", f"was killed by signal {signal_name(number)}"
    if _ended_with_memory_error(output):
        return "memory", f"ran out of memory (MemoryError) and exited with status {returncode}"
    return "exit", f"exited with status {returncode}"


def run_child(
    argv: list[str],
    cwd: Path,
    limits: Limits,
    env: dict[str, str] | None = None,
    run_as: str | None = "auto",
    isolate_network: bool = True,
) -> ChildResult:
    """Run ``argv`` in a sandboxed child and return how it ended; never raises for the child's doing.

    ``run_as`` is ``"auto"`` (``nobody`` when root, else the grader's user),
    ``None`` (the grader's user) or a user name (needs root). ``env`` replaces
    the minimal default environment; either way the child also gets
    ``SANDBOX_ID_VARIABLE``. When the child ends, every process of its
    session, its descendants and every process carrying its sandbox id are
    killed; when it ran as the dedicated user and no other child of that user
    runs on the machine, every remaining process of that user is killed too.
    """
    global _active_children
    started = time.monotonic()
    token = secrets.token_hex(16).encode()
    child_env = dict(env) if env is not None else _default_env(Path(cwd))
    child_env[SANDBOX_ID_VARIABLE] = token.decode()
    try:
        ids = _resolve_user(run_as)
        preexec = _make_preexec(_rlimits(limits, ids), isolate_network, ids)
    except (LookupError, OSError, ValueError) as exc:
        return ChildResult("error", None, 0.0, "", 0.0, f"could not be started: {exc}")

    lock_fd = _share_sweep_lock(ids)
    # The container's out-of-memory killer leaves no trace but SIGKILL; its counter tells it apart.
    cgroup = memory_cgroup()
    oom_kills = cgroup.oom_kills() if cgroup else None
    memory_before = (cgroup, oom_kills) if oom_kills is not None else None
    container_mb = cgroup.limit_mb() if cgroup else None
    guard = (cgroup, container_mb - limits.container_reserve_mb) \
        if container_mb is not None and limits.container_reserve_mb is not None else None
    try:
        with _ACTIVE_LOCK:
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    close_fds=True,
                    env=child_env,
                    start_new_session=True,
                    preexec_fn=preexec,
                )
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                hint = ""
                if ids is not None and isinstance(exc, PermissionError):
                    hint = f" (it runs as uid {ids[0]}, which must be able to reach and execute it)"
                seconds = time.monotonic() - started
                return ChildResult("error", None, seconds, "", 0.0, f"could not be started: {exc}{hint}")
            _active_children += 1

        try:
            return _supervise(proc, limits, token, ids, started, lock_fd, memory_before, guard)
        finally:
            with _ACTIVE_LOCK:
                _active_children -= 1
    finally:
        if lock_fd is not None:
            os.close(lock_fd)


def container_memory_detail(limit_mb: float | None, peak_mb: float) -> str:
    """What a child stopped by the container's out-of-memory killer is told, and what to do."""
    limit = f"{limit_mb:.0f} MB for the grader and all it runs, " if limit_mb else ""
    return (f"was stopped by the memory limit of the machine that grades it ({limit}of which it had used "
            f"{peak_mb:.0f} MB; a smaller network needs less memory, and the course staff can raise the limit)")


def _share_sweep_lock(ids: tuple[int, int] | None) -> int | None:
    """For a child of the dedicated user, the machine-wide sweep lock held shared; else (or without it) None."""
    if ids is None or ids != unprivileged_user():
        return None
    try:
        fd = os.open(_SWEEP_LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return None
    return fd


def _alone_on_machine(lock_fd: int | None) -> bool:
    """Whether no other child of the dedicated user runs on the machine (then ``lock_fd`` is held exclusively).

    Without the lock file only this process's children are known, and they are
    counted by the caller.
    """
    if lock_fd is None:
        return True
    fcntl.flock(lock_fd, fcntl.LOCK_UN)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _supervise(
    proc: subprocess.Popen,
    limits: Limits,
    token: bytes,
    ids: tuple[int, int] | None,
    started: float,
    lock_fd: int | None,
    memory_before: tuple[MemoryCgroup, int] | None = None,
    guard: tuple[MemoryCgroup, float] | None = None,
) -> ChildResult:
    """Wait for a started child under the limits, clean up and build the result.

    ``memory_before``: the grader's memory cgroup and its out-of-memory kills before the child started;
    ``guard``: as ``_Watchdog``'s ``container``.
    """
    assert proc.stdout is not None
    capture = _Capture(limits.output_bytes)
    # The reader owns the pipe from here on and closes it at end of file.
    fd = os.dup(proc.stdout.fileno())
    proc.stdout.close()
    pipe_inode = os.fstat(fd).st_ino
    reader = threading.Thread(target=_read_output, args=(fd, capture), name="sandbox-reader", daemon=True)
    reader.start()

    child = _read_proc(proc.pid) or _Proc(proc.pid, os.getpid(), proc.pid, b"R", 0, 0)
    tracker = _Tracker(child, token)
    watchdog = _Watchdog(tracker, limits, started + limits.wall_seconds, guard)
    watchdog.thread.start()

    returncode: int | None = None
    usage = None
    try:
        try:
            _, wait_status, usage = os.wait4(proc.pid, 0)
            returncode = os.waitstatus_to_exitcode(wait_status)
        except ChildProcessError:
            returncode = None
        proc.returncode = returncode if returncode is not None else -1
        seconds = time.monotonic() - started
    finally:
        watchdog.stop.set()
        watchdog.thread.join()
        tracker.kill_all()
        if ids is not None and ids == unprivileged_user() and ids[0] not in (0, os.getuid()):
            with _ACTIVE_LOCK:
                if _active_children == 1 and _alone_on_machine(lock_fd):
                    _sweep_user(ids[0])
        reader.join(_PIPE_GRACE_SECONDS)
        if reader.is_alive():
            tracker.adopt_pipe_holders(pipe_inode)
            tracker.kill_all()
            reader.join(_READER_JOIN_SECONDS)

    output = capture.text()
    peak = watchdog.peak_bytes
    cpu_used = None
    if usage is not None:
        peak = max(peak, usage.ru_maxrss * 1024)
        cpu_used = usage.ru_utime + usage.ru_stime
    container = None
    if watchdog.reason == "container" or \
            memory_before is not None and (memory_before[0].oom_kills() or 0) > memory_before[1]:
        # What the child held of the container's memory: its resident memory counts file pages that
        # other processes share, and that the kernel may have charged elsewhere.
        held = watchdog.peak_anon_bytes or peak
        container = (guard[0].limit_mb() if guard else memory_before[0].limit_mb(), held / _MB)
    status, detail = _classify(returncode, watchdog.reason, limits, output, cpu_used, container)
    return ChildResult(status, returncode, seconds, output, peak / _MB, detail)
