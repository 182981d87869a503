"""Grading processes: one per sandbox, forked from the grader once it holds what grading needs.

A worker drives one sandbox: it grades the submissions the grader hands it, one at a time, and
writes their files; the grader keeps the order of work, the state, the progress bar and the
class's outputs. Between the two pass only a job's number and a result's record (JSON-able data
the worker made, never the student's process's).

Processes rather than threads: a worker spends about a third of each submission in Python
(requests, answers, judgements, files), and threads would queue for one GIL, each sandbox then
waiting while another worker's Python runs. Forked rather than spawned: the imports (torch,
nbgrader), the batteries and the class are shared copy-on-write, and a worker starts in
milliseconds. The grader forks before it starts any thread (the progress bar's included), so no
lock is copied held.

`alongside` forks one more, at the end: the class's report is written beside the gradebook's
transaction, on the core that grading no longer needs.
"""
import collections
import contextlib
import multiprocessing
import sys
import time
from multiprocessing.connection import wait

from gradekit.errors import SandboxError

FORK = multiprocessing.get_context("fork")


class Workers:
    """`with Workers(sandboxes, job) as pool:` forks one worker per sandbox; `pool.answers(n)`
    hands out jobs 0 .. n-1. `job(sandbox, number)` runs in the worker that owns `sandbox`."""

    def __init__(self, sandboxes, job):
        self.ready = []  # when each box was up (time.monotonic())
        self.private_bytes = []  # each finished worker's own memory (for `make bench`)
        self._workers = {}  # our end of each worker's pipe -> its process
        self._late = []  # workers whose box is not started: past one per core, they boot once one box is up
        for sandbox in sandboxes:
            ours, theirs = FORK.Pipe()
            process = FORK.Process(target=_serve, args=(theirs, sandbox, job, sandbox.process is None),
                                   name="gradekit-worker", daemon=True)
            process.start()
            theirs.close()
            self._workers[ours] = process
            if sandbox.process is None:
                self._late.append(ours)

    def answers(self, count):
        """Yield (number, answer) for jobs 0 .. count-1 as they finish: job's return value, or
        None where its worker died first (every worker dead: the rest get None too)."""
        pending, busy = collections.deque(range(count)), {}
        while self._workers:
            for conn in wait(list(self._workers)):
                try:
                    message = conn.recv()
                except (EOFError, OSError):  # the worker is gone: the job it held has no answer
                    self._workers.pop(conn).join()
                    conn.close()
                    if conn in busy:
                        yield busy.pop(conn), None
                    continue
                if message[0] == "memory":
                    self.private_bytes.append(message[1])
                    continue
                if message[0] == "ready":
                    if message[1] is not None:
                        self.ready.append(message[1])
                    for late in self._late:
                        late.send("boot")
                    self._late = []
                else:
                    yield busy.pop(conn), message[1]
                if pending:
                    busy[conn] = pending.popleft()
                conn.send(busy.get(conn))
        for number in pending:
            yield number, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for conn, process in self._workers.items():
            process.kill()
            process.join()
            conn.close()
        self._workers = {}


@contextlib.contextmanager
def alongside(function, *args):
    """`with alongside(f, ...):` runs f(...) in a forked process while the block runs, then waits
    for it. Where it failed (or could not start), it runs again here, so its error is the caller's
    own. For the class's last steps: the gradebook's transaction in the grader, the report (mostly
    matplotlib, in Python) beside it on the core that grading no longer needs."""
    try:
        process = FORK.Process(target=_quietly, args=(function, args), name="gradekit-alongside", daemon=True)
        process.start()
    except OSError:
        process = None
    try:
        yield
    finally:
        if process is not None:
            process.join()
    if process is None or process.exitcode != 0:
        function(*args)


def _quietly(function, args):
    """A forked helper's body: its error is told by its exit code (and raised again by the
    grader, which runs the step itself), never printed as a traceback."""
    try:
        function(*args)
    except BaseException:
        sys.exit(1)


def _private_bytes():
    """Memory this process holds that the grader does not share with it (what forking cost): its
    private pages, as the kernel counts them. 0 where /proc cannot say."""
    try:
        with open("/proc/self/smaps_rollup") as rollup:
            fields = dict(line.split(":", 1) for line in rollup if ":" in line)
        return sum(int(fields[name].split()[0]) << 10 for name in ("Private_Clean", "Private_Dirty", "Swap"))
    except (OSError, KeyError, ValueError):
        return 0


def _serve(conn, sandbox, job, late):
    """A worker: boot (or wait to boot) its sandbox, then grade until the grader says stop."""
    try:
        if late:
            conn.recv()
        try:
            sandbox.ready()
            conn.send(("ready", time.monotonic()))
        except SandboxError:
            conn.send(("ready", None))  # each of its submissions then says so in its row
        while (number := conn.recv()) is not None:
            conn.send(("done", job(sandbox, number)))
        conn.send(("memory", _private_bytes()))
    except (EOFError, OSError, KeyboardInterrupt):
        pass  # the grader is gone or stopping: it accounts for what is unanswered
    finally:
        sandbox.stop()
