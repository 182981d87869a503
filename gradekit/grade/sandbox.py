"""The grader's side of a sandbox: start one, open a fresh student process in it per submission.

A `Sandbox` is one bubblewrap box holding a zygote (gradekit/run/zygote.py). The box sees the
Python install and the virtual environment read-only, and of the kit only gradekit/run (checks,
hidden checks and solutions stay outside); it has no course files, no home, no network, its own
PID and user namespaces, and pids and memory cgroups where the grader may make them. Each
submission gets a fresh world inside it (gradekit/run/world.py) and a socket to the grader of
its own.

With `Sandbox.mode = "none"` in grader_config.py (weak mode, opted into) the zygote runs as a
plain child process: the resource caps still apply, isolation does not.
"""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from functools import cache
from pathlib import Path

import gradekit.run
from gradekit.errors import SandboxError
from gradekit.run import frames

START_SECONDS = 120  # importing torch on a busy machine
RUN_PACKAGE = Path(gradekit.run.__file__).resolve().parent
INSIDE = "/opt/gradekit"  # where gradekit/run is mounted in the box (as gradekit.run)
# Python as started, with any ".." folded away: `../.venv/bin/python` from a course folder is
# /course/../.venv/bin/python, and the course folder is not in the box.
PYTHON = os.path.abspath(sys.executable)
# glibc's malloc backs its heap with transparent huge pages (where the kernel has them): most of the
# zygote's memory is that heap, and each submission's fork copies its page tables and the exit
# frees them, 512 times fewer entries with 2 MiB pages (about 10 ms of kernel time a T04 submission).
HUGE_PAGES = "glibc.malloc.hugetlb=1"
THP_SETTINGS = "/sys/kernel/mm/transparent_hugepage"
WEAK_MODE = ("Sandbox.mode is 'none': submissions run as plain processes with CPU, memory, time and "
             "process caps only; they can read what the grader's user can read and reach the network")


def _bwrap_base():
    return ["bwrap", "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534",
            "--cap-add", "CAP_SYS_ADMIN", "--disable-userns", "--die-with-parent", "--new-session"]


@cache
def bwrap_problem():
    """Why bubblewrap cannot make our sandbox here, or None when it can."""
    if not shutil.which("bwrap"):
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    try:
        probe = subprocess.run(_bwrap_base() + ["--ro-bind", "/", "/", "true"], capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap did not run: {error}"
    if probe.returncode != 0:
        lines = probe.stderr.strip().splitlines()
        return "bubblewrap cannot create namespaces here" + (f" ({lines[-1]})" if lines else "")
    return None


def check_mode(mode):
    """Refuse to grade where the configured sandbox cannot start; say what to do."""
    if mode == "bwrap" and bwrap_problem():
        raise SandboxError(f"the grading sandbox cannot start: {bwrap_problem()}. Fix that, or opt into "
                           "grading without isolation with c.Sandbox.mode = 'none' in grader_config.py")


def _python_paths():
    paths = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    return sorted(p for p in paths if os.path.isdir(p))


def _python_prefixes():
    """The Python install and the virtual environment: what the box binds read-only."""
    return sorted({sys.base_prefix, sys.prefix})


def _zygote_command(fd, isolated):
    if not isolated:
        return [PYTHON, "-I", "-m", "gradekit.run.zygote", str(fd)]
    boot = (f"import sys; sys.path[:0] = {[INSIDE] + _python_paths()!r}; "
            "from gradekit.run.zygote import main; main()")
    command = _bwrap_base() + [
        "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
        "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
        "--setenv", "GLIBC_TUNABLES", HUGE_PAGES,
        "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev", "--dir", "/dev/shm", "--size", str(16 << 20), "--tmpfs", "/tmp",
        "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
        "--ro-bind-try", THP_SETTINGS, THP_SETTINGS]  # glibc reads whether THP is on from there
    for path in _python_prefixes():
        command += ["--ro-bind", path, path]
    command += ["--ro-bind", str(RUN_PACKAGE), f"{INSIDE}/gradekit/run", "--remount-ro", "/", "--chdir", "/"]
    return command + ["--", PYTHON, "-I", "-S", "-c", boot, str(fd)]


class Cgroup:
    """One cgroup of one controller ("pids" or "memory") for one sandbox, where this user may make
    it: cgroup v1's hierarchy of that controller, or v2 with the controller enabled for children.
    bubblewrap's user namespace defeats RLIMIT_NPROC, and RLIMIT_AS caps each process alone: the
    cgroups cap the box, processes and memory (scratch files included), as a whole."""

    FILES = {("pids", 1): {"max": "pids.max"}, ("pids", 2): {"max": "pids.max"},
             ("memory", 1): {"max": "memory.limit_in_bytes", "current": "memory.usage_in_bytes",
                             "events": "memory.oom_control"},
             ("memory", 2): {"max": "memory.max", "current": "memory.current", "events": "memory.events"}}

    def __init__(self, path, controller, version):
        self.path, self.controller, self.version = path, controller, version

    @classmethod
    def root(cls, controller):
        """(root, cgroup version), or None where this user cannot make a cgroup of `controller`."""
        v1 = Path("/sys/fs/cgroup") / controller
        if (v1 / "cgroup.procs").is_file() and os.access(v1, os.W_OK):
            return v1, 1
        v2 = Path("/sys/fs/cgroup")
        try:
            if controller in (v2 / "cgroup.subtree_control").read_text().split() and os.access(v2, os.W_OK):
                return v2, 2
        except OSError:
            pass
        return None

    @classmethod
    def make(cls, controller):
        found = cls.root(controller)
        if found is None:
            return None
        root, version = found
        return cls(Path(tempfile.mkdtemp(prefix="gradekit-", dir=root)), controller, version)  # mkdir makes one

    def _file(self, name):
        return self.path / self.FILES[(self.controller, self.version)][name]

    def limit(self, value):
        self._file("max").write_text(str(value))

    def current(self):
        return int(self._file("current").read_text())

    def oom_kills(self):
        for line in self._file("events").read_text().splitlines():
            key, _, count = line.partition(" ")
            if key == "oom_kill":
                return int(count)
        return 0

    def remove(self):
        for _ in range(500):  # empty once the killed processes are gone: the zygote's exit takes a few ms
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:  # removed by the grading process that stopped this box
                return
            except OSError:
                time.sleep(0.01)


def _own_process_count():
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


@contextlib.contextmanager
def boot_ahead(count):
    """Up to `count` bubblewrap boxes (one per core at most), started before the grader imports
    torch and reads the course, so that their boot (importing torch: about 1.8 s of a core each)
    overlaps the grader's own start-up instead of following it. That start-up (its imports, about
    3.5 s of a core) is the longer path to grading, so it keeps a core of its own: as many boxes
    as there are other cores (at least one) boot at once, any more with `start_all`, once the
    grader has imported torch. Each is configured before use (a course in weak mode replaces them),
    and stopped at the end of the block; none where bubblewrap cannot run."""
    cores = os.cpu_count() or 1
    booted = [] if bwrap_problem() else [Sandbox() for _ in range(min(count, cores))]
    try:
        start_all(booted[:max(1, cores - 1)])
        yield booted
    finally:
        for sandbox in booted:
            sandbox.stop()


def start_all(sandboxes):
    """Start those of `sandboxes` that are not started."""
    for sandbox in sandboxes:
        if sandbox.process is None:
            sandbox.start()


class Sandbox:
    """One sandbox and its zygote. `open()` gives a Session with a fresh student process;
    `finish(session)` ends it and says how it ended. Used by one process at a time: the grader
    starts it, the worker forked to drive it may stop and replace it, and the grader stops
    whatever is left of it at the end.

    Starting a box needs only to know that it is one: the course's caps come with `configure()`
    (before `open()`), the memory cap once the box has booted, and each submission's own caps with
    its fork. So a box can boot while the grader is still starting (boot_ahead)."""

    def __init__(self, settings=None, workers=1):
        self.settings = None
        self.isolated = True
        self.process = self.control = None
        self._cgroups = {}
        self._jobs = 0
        self._ready = False
        self._preloaded = set()  # names of the Preloads the zygote holds
        if settings is not None:
            self.configure(settings, workers)

    def configure(self, settings, workers=1):
        """The course's settings: bubblewrap or weak mode, and the caps."""
        check_mode(settings.mode)
        if self.process is not None and self.isolated != (settings.mode == "bwrap"):
            self.stop()  # booted ahead as a bubblewrap box, for a course in weak mode: started again on use
        self.settings = settings
        self.isolated = settings.mode == "bwrap"
        # Weak mode only: RLIMIT_NPROC counts every process of this user on the machine.
        self.nproc = _own_process_count() + settings.processes * max(workers, 1) + 32
        if self._ready:
            self._cap()
        return self

    # ---- life of the box --------------------------------------------------------------

    def start(self):
        """Start the box; it imports torch in the background (see ready())."""
        grader_end, box_end = socket.socketpair()
        command = _zygote_command(box_end.fileno(), self.isolated)
        if self.isolated:
            self._make_cgroups()
            if self._cgroups:  # joined before bwrap starts, so everything in the box is born in them
                join = " && ".join(f'echo $$ > "{c.path}/cgroup.procs"' for c in self._cgroups.values())
                command = ["/bin/sh", "-c", join + ' && exec "$@"', "sh", *command]
        # bubblewrap's own process is visible in the box: it gets no environment of the grader's,
        # and its stderr (which the box could write) goes to a file read only when the box fails.
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, pass_fds=[box_end.fileno()], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=True,
                                        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
                                             "GLIBC_TUNABLES": HUGE_PAGES})
        box_end.close()
        self.control = grader_end
        frames.send(self.control, {"isolated": self.isolated, "python": _python_prefixes()})
        self._ready = False
        return self

    def ready(self):
        """Wait until the box has booted, then cap it as the course says."""
        if self.process is None:
            self.start()
        if not self._ready:
            reply = self._control_reply(START_SECONDS)
            if not reply or not reply.get("ready"):
                self._stderr.seek(0)
                why = self._stderr.read(4000).decode(errors="replace").strip().splitlines()
                self.stop()
                raise SandboxError("the sandbox did not start" + (f": {why[-1]}" if why else ""))
            self._cap()
            self._ready = True
        return self

    def _cap(self):
        """The pids cap, and the memory cap: the box as it stands, plus one submission's allowance
        (until the box has booted, it runs only the zygote's import of torch)."""
        pids, memory = self._cgroups.get("pids"), self._cgroups.get("memory")
        try:
            if pids:
                pids.limit(self.settings.processes + 8)
            if memory:
                memory.limit(memory.current() + (self.settings.memory_mb << 20))
        except OSError as error:
            self.stop()
            raise SandboxError(f"the sandbox's caps could not be set: {error}") from None

    def _make_cgroups(self):
        """The box's cgroups, each where this user may make it (a machine that refuses one grades
        without that cap, as where the grader is not root)."""
        for controller in ("pids", "memory"):
            try:
                cgroup = Cgroup.make(controller)
            except OSError:
                continue
            if cgroup is not None:
                self._cgroups[controller] = cgroup

    def stop(self):
        if self.process is not None:
            try:
                os.killpg(self.process.pid, 9)
            except ProcessLookupError:
                pass
            self.process.wait()
            self._stderr.close()
            self.control.close()
            self.process = None
            self._ready = False
            self._preloaded = set()
        for cgroup in self._cgroups.values():
            cgroup.remove()
        self._cgroups = {}

    # ---- one submission ---------------------------------------------------------------

    def _preload(self, preload):
        """Give the zygote a battery's inputs (once per box), then cap its memory again: the
        inputs are the box's, not a submission's allowance."""
        if preload is None or preload.name in self._preloaded:
            return
        frames.send(self.control, {"preload": preload.name}, preload.blobs())
        reply = self._control_reply(START_SECONDS)
        if not reply or reply.get("preloaded") != preload.name:
            raise SandboxError("the sandbox did not take the battery's inputs")
        self._cap()
        self._preloaded.add(preload.name)

    def open(self, preload=None):
        """A Session with a fresh student process, ready for the submission's cells, holding
        `preload`'s tensors (a remote.Preload) from its start. A box that fails before any student
        code ran is replaced and tried once more: never the student's fault."""
        from gradekit.grade.remote import Session  # torch: not needed to start a box (boot_ahead)
        s = self.settings
        limits = {"memory_mb": s.memory_mb, "cpu_seconds": s.cpu_seconds, "scratch_mb": s.scratch_mb,
                  "nproc": self.nproc}
        for attempt in range(2):
            try:
                self.ready()
                self._preload(preload)
                self._jobs += 1
                mine, theirs = socket.socketpair()
                frames.send(self.control, {"fork": self._jobs, "limits": limits}, fds=[theirs.fileno()])
                theirs.close()
                started = self._control_reply(START_SECONDS)
                if started and started.get("started") == self._jobs:
                    deadline = time.monotonic() + self.settings.wall_seconds
                    session = Session(mine, deadline, self.settings.answer_mb << 20, preload)
                    session.job = self._jobs
                    session.oom_kills = self._oom_kills()
                    hello = frames.receive(mine, time.monotonic() + START_SECONDS)
                    if hello and hello[0] == {"hello": True}:
                        return session
                mine.close()
            except (OSError, frames.Closed, frames.WireError, SandboxError) as error:
                if attempt:
                    raise SandboxError(f"the sandbox failed before running the submission: {error}") from None
            self.stop()
        raise SandboxError("the sandbox failed twice before running the submission")

    def finish(self, session):
        """End the session's process; how it ended: {"exit": n} or {"signal": name}, with
        "killed" when the grader's deadline ended it and "memory" when the box's memory cgroup
        killed one of its processes. The box is replaced if it misbehaves."""
        session.sock.close()
        if session.ended == "timeout":
            self._send_control({"kill": session.job})
        done = self._control_reply(10)
        if done is None or done.get("done") != session.job:
            self._send_control({"kill": session.job})
            done = self._control_reply(10)
        if done is None or done.get("done") != session.job:
            self.stop()  # a zygote that does not answer is replaced; the next submission gets a new box
            return {"lost": True}
        if self._oom_kills() > session.oom_kills:
            done["memory"] = True
        if done.get("unclean"):
            self.stop()
        return done

    def _oom_kills(self):
        """How many processes the box's memory cgroup has killed so far (0 without one)."""
        memory = self._cgroups.get("memory")
        try:
            return memory.oom_kills() if memory else 0
        except OSError:
            return 0

    def _send_control(self, message):
        try:
            frames.send(self.control, message)
        except OSError:
            pass

    def _control_reply(self, timeout):
        if self.control is None:
            return None
        self.control.settimeout(timeout)
        try:
            message, fds, _ = frames.receive_control(self.control)
        except (OSError, ValueError):
            return None
        for fd in fds:
            os.close(fd)
        return message

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
