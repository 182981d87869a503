"""The grader's side of a sandbox: start one, hand it submissions, read back observations.

A `Worker` owns one sandboxed zygote (gradekit.grade.zygote). With bubblewrap the sandbox sees
the Python install, the virtual environment and the kit's package, read-only, and a private
/tmp; no course files, no home, no network, its own PID namespace (it cannot signal the grader),
and no further user namespaces. Without bubblewrap (`Sandbox.mode = "none"`, or "auto" where
bwrap does not work) the same zygote runs as a plain child process: caps still apply, but the
code can read what the grader's user can read and reach the network.
"""
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import gradekit
from gradekit import wire
from gradekit.errors import SandboxError
from gradekit.grade.probe import FRAME, MAX_FRAME
from gradekit.grade.zygote import LENGTH

WEAK_MODE_WARNING = ("submissions run as plain processes with CPU, memory, time and output caps only; they "
                     "can read files the grader can read and reach the network. Install bubblewrap "
                     "(apt-get install bubblewrap) and set Sandbox.mode to 'auto' for full isolation.")
START_SECONDS = 120  # importing torch on a busy machine


@dataclass
class ProbeRun:
    """What came back from running one submission."""

    cell_errors: list = field(default_factory=list)
    missing_class: str | None = None
    observations: dict = field(default_factory=dict)  # (module, index) -> (obs, error)
    notes: list = field(default_factory=list)
    ended: dict = field(default_factory=dict)  # how the child ended, from the zygote
    complete: bool = False  # the child sent its last frame


@cache
def bwrap_works():
    path = shutil.which("bwrap")
    if not path:
        return False
    probe = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def resolve_mode(mode):
    if mode == "auto":
        return "bwrap" if bwrap_works() else "none"
    if mode == "bwrap" and not bwrap_works():
        raise SandboxError("Sandbox.mode is 'bwrap' but bubblewrap is missing or cannot create namespaces")
    return mode


def _read_only_paths():
    """What Python needs inside the sandbox: interpreter, venv, the kit's package. Nothing else."""
    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(gradekit.__file__).resolve().parent.parent / "gradekit"}
    return sorted(str(p) for p in paths)


def bwrap_command(python_argv):
    command = ["bwrap", "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns",
               "--die-with-parent", "--new-session",
               "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
               "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--setenv", "OMP_NUM_THREADS", "1",
               "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
               "--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
               "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    for path in _read_only_paths():
        command += ["--ro-bind", path, path]
    return command + ["--chdir", "/tmp", "--"] + python_argv


def pids_cgroup_root():
    """Where a per-sandbox process cap can be made: cgroup v1's pids hierarchy, or cgroup v2 with the
    pids controller enabled for children; None where this user cannot (then RLIMIT_NPROC is all)."""
    v1 = Path("/sys/fs/cgroup/pids")
    if (v1 / "cgroup.procs").is_file() and os.access(v1, os.W_OK):
        return v1
    v2 = Path("/sys/fs/cgroup")
    try:
        if "pids" in (v2 / "cgroup.subtree_control").read_text().split() and os.access(v2, os.W_OK):
            return v2
    except OSError:
        pass
    return None


def make_pids_cgroup(limit):
    root = pids_cgroup_root()
    if root is None:
        return None
    path = Path(tempfile.mkdtemp(prefix="gradekit-", dir=root))  # mkdir in a cgroup fs makes a cgroup
    (path / "pids.max").write_text(str(limit))
    return path


def _own_process_count():
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


class Worker:
    """One sandboxed zygote; `run(cells)` grades one submission's code in a fresh child."""

    def __init__(self, assignment, limits, mode="auto", workers=1):
        self._scratch = self._cgroup = None
        self.assignment = assignment
        self.limits = limits
        self.mode = resolve_mode(mode)
        # RLIMIT_NPROC counts every process of this user on the machine: leave room for what
        # runs now plus each worker's allowance.
        self.nproc = _own_process_count() + limits.processes * max(workers, 1) + 32
        self.process = None

    def start(self):
        grader_end, sandbox_end = socket.socketpair()
        argv = [sys.executable, "-I", "-m", "gradekit.grade.zygote", str(sandbox_end.fileno())]
        if self.mode == "bwrap":
            command, scratch, env = bwrap_command(argv), "/tmp", None
            # RLIMIT_NPROC does not hold inside bwrap's user namespace: cap processes with a cgroup,
            # joined before bwrap starts so that everything in the sandbox is born inside it.
            self._cgroup = make_pids_cgroup(self.limits.processes + 8)
            if self._cgroup:
                join = f'echo $$ > "{self._cgroup}/cgroup.procs" && exec "$@"'
                command = ["/bin/sh", "-c", join, "sh", *command]
        else:
            self._scratch = tempfile.mkdtemp(prefix="gradekit-")
            command, scratch = argv, self._scratch
            env = {"PATH": "/usr/bin:/bin", "HOME": self._scratch, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(command, pass_fds=[sandbox_end.fileno()], env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)
        sandbox_end.close()
        self.sock = grader_end
        limits = {"memory_mb": self.limits.memory_mb, "cpu_seconds": self.limits.cpu_seconds,
                  "wall_seconds": self.limits.wall_seconds, "output_kb": self.limits.output_kb,
                  "nproc": self.nproc}
        self._send({"modules": self.assignment.modules, "limits": limits,
                    "isolated": self.mode == "bwrap", "scratch": scratch})
        reply = self._receive(START_SECONDS)
        if not reply or not reply.get("ready"):
            error = self.process.stderr.read1(4000).decode(errors="replace").strip().splitlines()
            self.stop()
            raise SandboxError("the sandbox did not start" + (f": {error[-1]}" if error else ""))

    def stop(self):
        if self.process is not None:
            try:
                os.killpg(self.process.pid, 9)
            except ProcessLookupError:
                pass
            self.process.wait()
            self.process.stderr.close()
            self.sock.close()
            self.process = None
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        if self._cgroup:
            for _ in range(50):  # empty once the killed processes are reaped
                try:
                    self._cgroup.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
            self._cgroup = None

    def run(self, cells, checks):
        """Run `cells`, then the probes of `checks` (list of Check); the sandbox restarts if it broke."""
        job = {"job": time.monotonic_ns(), "cells": cells, "class_name": self.assignment.class_name,
               "checks": [[c.module, c.index] for c in checks]}
        read_end = self._hand_over(job)
        run = ProbeRun()
        deadline = time.monotonic() + self.limits.wall_seconds + 10
        try:
            _read_frames(read_end, deadline, run)
        finally:
            os.close(read_end)
        done = self._receive(max(deadline - time.monotonic(), 0) + 10)
        if not done or "done" not in done:
            self.stop()  # a zygote that does not answer is replaced; the next job starts a new one
            run.ended = {"ended": "sandbox-killed"}
        else:
            run.ended = {k: v for k, v in done.items() if k != "done"}
        return run

    def _hand_over(self, job):
        """Send a job and wait until its child is forked; return the read end of its frame pipe.
        A sandbox that dies before that (between jobs) is replaced and the job sent again, once:
        the submission never ran, so nothing is held against it."""
        for _ in range(2):
            if self.process is None:
                self.start()
            read_end, write_end = os.pipe()
            try:
                self._send(job, fds=[write_end])
                started = self._receive(START_SECONDS)
            except OSError:
                started = None
            finally:
                os.close(write_end)
            if started and started.get("started") == job["job"]:
                return read_end
            os.close(read_end)
            self.stop()
        raise SandboxError("the sandbox failed twice before running the submission")

    def _send(self, message, fds=()):
        data = json.dumps(message).encode()
        socket.send_fds(self.sock, [LENGTH.pack(len(data)) + data], list(fds))

    def _receive(self, timeout):
        self.sock.settimeout(timeout)
        try:
            head = _recv_exactly(self.sock, LENGTH.size)
            return json.loads(_recv_exactly(self.sock, LENGTH.unpack(head)[0]))
        except (OSError, ValueError, EOFError):
            return None


def _recv_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _read_frames(fd, deadline, run):
    """Read frames from the child's pipe until its last frame, EOF, or the deadline."""
    buffer = bytearray()
    while not run.complete:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return
        buffer += chunk
        while len(buffer) >= FRAME.size:
            (size,) = FRAME.unpack_from(buffer)
            if size > MAX_FRAME:
                run.notes.append("the sandbox sent an oversized answer; ignored")
                return
            if len(buffer) < FRAME.size + size:
                break
            payload = bytes(buffer[FRAME.size:FRAME.size + size])
            del buffer[:FRAME.size + size]
            try:
                _take(wire.decode(payload), run)
            except (wire.WireError, KeyError, TypeError, ValueError):
                run.notes.append("the sandbox sent an unreadable answer; ignored")
                return


def _take(message, run):
    kind = message["kind"]
    if kind == "cells":
        run.cell_errors = [str(e) for e in message["errors"]]
    elif kind == "missing":
        run.missing_class = str(message["message"])
    elif kind == "check":
        key = (str(message["module"]), int(message["index"]))
        if key not in run.observations:  # the first answer counts: no overwriting
            error = message["error"]
            run.observations[key] = (message["obs"], None if error is None else str(error))
    elif kind == "note":
        run.notes.append(str(message["message"]))
    elif kind == "end":
        run.complete = True
