"""A cgroup v1 box of a given CPU quota and memory limit, for measuring inside Gradescope's container size.

Gradescope runs each grade in a container of 0.5 vCPU and 768 MB by default.
As root on a machine with cgroup v1 (``/sys/fs/cgroup/cpu`` and
``/sys/fs/cgroup/memory``), ``Box`` makes a pair of cgroups with the same
limits, starts a command inside them, reads the peak memory the kernel
charged to the box and whether the out-of-memory killer fired, and removes
both cgroups afterwards (also after an error).
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class BoxSize:
    cpus: float
    memory_mb: int

    def __str__(self) -> str:
        return f"{self.cpus:g} vCPU, {self.memory_mb} MB"


# Gradescope's default container; its CPU with the memory the README recommends; a larger one.
BOXES = {"gradescope": BoxSize(0.5, 768), "recommended": BoxSize(0.5, 2048), "1cpu-2gb": BoxSize(1.0, 2048)}


class BoxError(Exception):
    """The box cannot be made here (not root, or no cgroup v1 hierarchy)."""


class Box:
    """A cpu and a memory cgroup with ``size``'s limits; a context manager that removes them."""

    PERIOD_US = 100_000

    def __init__(self, size: BoxSize):
        self.size = size
        name = f"vae-kit-box-{secrets.token_hex(4)}"
        self.cpu = CGROUP_ROOT / "cpu" / name
        self.memory = CGROUP_ROOT / "memory" / name

    def __enter__(self) -> "Box":
        if os.geteuid() != 0 or not (CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us").exists() \
                or not (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists():
            raise BoxError("a box needs root and the cgroup v1 hierarchies /sys/fs/cgroup/cpu and /memory")
        self.cpu.mkdir()
        self.memory.mkdir()
        try:
            (self.cpu / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (self.cpu / "cpu.cfs_quota_us").write_text(str(int(self.size.cpus * self.PERIOD_US)))
            (self.memory / "memory.limit_in_bytes").write_text(str(self.size.memory_mb * 2**20))
        except OSError:
            self.__exit__(None, None, None)
            raise
        return self

    def wrap(self, command: list[str]) -> list[str]:
        """``command`` started inside the box: a shell joins both cgroups, then execs it."""
        join = f'echo $$ > {self.cpu}/tasks && echo $$ > {self.memory}/tasks && exec "$@"'
        return ["sh", "-c", join, "box", *command]

    def peak_mb(self) -> float:
        """The most memory charged to the box at once (resident memory and page cache), in MB."""
        return int((self.memory / "memory.max_usage_in_bytes").read_text()) / 2**20

    def oom_kills(self) -> int:
        """How many processes the kernel's out-of-memory killer stopped in the box."""
        for line in (self.memory / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def __exit__(self, *exc) -> None:
        for group in (self.cpu, self.memory):
            if not group.exists():
                continue
            for _ in range(50):
                pids = [int(p) for p in (group / "tasks").read_text().split()]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, 9)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
            group.rmdir()
