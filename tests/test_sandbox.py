"""The sandbox's plumbing: what crosses the wire is plain data within budgets, every submission
gets a fresh world, and a sandbox that breaks is replaced without blaming anyone."""
import os
import signal
import socket
import subprocess
import sys

from pathlib import Path

import numpy
import pytest
import torch

from conftest import COURSE
from gradekit.errors import SandboxError
from gradekit.grade import sandbox as sandbox_module
from gradekit.grade.remote import Ended, Namespace, Preload, RemoteError
from gradekit.run import frames, wire
from mutants import batchnorm

SOLUTION = batchnorm.SOLUTION


def round_trip(value, refer=lambda o: {"opaque": type(o).__name__}):
    a, b = socket.socketpair()
    blobs = []
    wire.send(a, {"ok": wire.encode(value, refer, blobs)}, blobs)
    document, tensors, _ = wire.receive(b)
    return wire.decode(document["ok"], tensors, lambda tag: None, text=wire.clean_text)



def test_wire_round_trips_plain_data():
    value = {"shape": (1, 2), "flags": [True, None, "x", 1.5], "size": torch.Size([3, 4]), "dtype": torch.float64}
    assert round_trip(value) == value
    back = round_trip(numpy.zeros(2))
    assert isinstance(back, wire.Opaque) and back.type_name == "ndarray"


def test_tensors_cross_as_safetensors():
    a, b = socket.socketpair()
    tensors = [torch.randn(3, 4, dtype=torch.float64), torch.ones(2, dtype=torch.bfloat16), torch.empty(0, 3),
               torch.arange(6).reshape(2, 3).t()]
    blobs = [wire.tensor_bytes(t) for t in tensors]
    wire.send(a, {"ok": [{"tensor": str(i)} for i in range(len(blobs))]}, blobs)
    document, received, _ = wire.receive(b)
    back = wire.decode(document["ok"], received, None)
    for sent, got in zip(tensors, back):
        assert got.dtype == sent.dtype and torch.equal(got, sent)


@pytest.mark.parametrize("document", [
    {"tensor": "0"},  # refers to data the frame does not hold
    {"tuple": [1], "dict": {}},  # two tags
    {"dtype": "object"},
    {"size": ["a"]},
    {"device": "cuda:0"},
], ids=["missing-tensor", "two-tags", "bad-dtype", "bad-size", "device"])
def test_decode_rejects_malformed_values(document):
    with pytest.raises(wire.WireError):
        wire.decode(document, {}, None)


def test_decode_refuses_deep_nesting_without_recursing():
    deep = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(wire.WireError, match="deeply"):
        wire.decode(deep, {}, None)


def test_receive_refuses_frames_over_budget_and_malformed_buffers():
    a, b = socket.socketpair()
    a.sendall(frames.FRAME.pack(10, 1 << 40))
    with pytest.raises(wire.WireError, match="budget"):
        wire.receive(b, budget=1 << 20)
    a.sendall(frames.FRAME.pack(2, 16) + b"{}" + b"\xff" * 16)
    with pytest.raises(wire.WireError, match="malformed tensor"):
        wire.receive(b)


def test_clean_text_keeps_text_and_removes_what_could_hurt():
    assert wire.clean_text("fine\ttext\nhere") == "fine\ttext\nhere"
    cleaned = wire.clean_text("a\ud800b\x1b[31mc\x00" + "x" * 5000)
    cleaned.encode("utf-8")  # valid UTF-8
    assert "\x1b" not in cleaned and "\x00" not in cleaned and len(cleaned) <= wire.MAX_TEXT


def test_every_submission_gets_a_fresh_world(sandbox):
    traces = ("import os\nopen('/tmp/trace', 'w').write('x')\nopen('/dev/shm/trace', 'w').write('x')\n"
              "os.chmod('/tmp', 0)")
    for _ in range(2):
        session = sandbox.open()
        ns = Namespace(session)
        errors = session.request("cells", cells=[(1, "import os\nseen = [os.path.exists(p) for p in "
                                                    "('/tmp/trace', '/dev/shm/trace')]\n" + traces)], names=[])
        assert errors["errors"] == [] and ns.seen == [False, False]
        assert sandbox.finish(session)["exit"] == 0


# The world's init (pid 1) holds the namespace open: the student's process may neither kill it
# (pid 1 ignores signals from inside that it has no handler for), nor trace it (it runs without
# the student's seccomp filter and limits), nor see the box's processes.
INIT_CELL = """import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
traced = [libc.ptrace(16, 1, 0, 0), ctypes.get_errno()]  # PTRACE_ATTACH
os.kill(1, signal.SIGKILL)
me = os.readlink("/proc/self")
visible = [p for p in os.listdir("/proc") if p.isdigit() and p != me and os.listdir(f"/proc/{p}")]
"""


def test_the_worlds_init_is_out_of_the_students_reach(sandbox):
    session = sandbox.open()
    errors = session.request("cells", cells=[(1, INIT_CELL)], names=[])
    ns = Namespace(session)
    assert errors["errors"] == [] and ns.traced == [-1, 1] and ns.visible == []
    assert sandbox.finish(session)["exit"] == 0


# Five 8 MiB blocks at once, freed together, five times over: with glibc's defaults the freed
# heap is trimmed each time and the next round faults in every page again.
REUSE_CELL = """import resource
faults = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [bytearray(8 << 20) for _ in range(5)]
    del blocks
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_freed_memory_is_reused_in_the_grader_and_in_every_world(sandbox):
    grader = subprocess.run([sys.executable, "-c", "from gradekit.run import heap\nheap.keep_freed_memory()\n"
                             + REUSE_CELL + "print(max(faults[1:]))"], capture_output=True, text=True, check=True)
    assert int(grader.stdout) < 100
    session = sandbox.open()
    # Counted in 4 KiB pages: huge pages (below) would fault 512 of them at once.
    no_huge_pages = "import ctypes\nctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE\n"
    session.request("cells", cells=[(1, no_huge_pages + REUSE_CELL)], names=[])
    faults = Namespace(session).faults
    assert faults[0] > 5000 and max(faults[1:]) < 100, faults  # the pages of round one serve the rest
    sandbox.finish(session)


def test_a_world_starts_without_sympy(sandbox):
    """torch imports sympy lazily (a gradient argument to backward() does): the zygote must not, or
    every fork copies its 30 MB and every exit frees them."""
    session = sandbox.open()
    session.request("cells", cells=[(1, "import sys\nloaded = 'sympy' in sys.modules")], names=[])
    assert Namespace(session).loaded is False
    sandbox.finish(session)


def test_magics_do_nothing_and_a_submission_may_import_ipython(sandbox):
    """The zygote loads IPython's cell transformer alone (zygote.py): magics still become calls
    that do nothing, and the submission's own `import IPython` gets the whole package."""
    session = sandbox.open()
    cells = [(1, "%matplotlib inline\n!ls /\nx = 2\nimport sys\npreloaded = 'IPython' in sys.modules"),
             (2, "import IPython, IPython.display\n"
                 "real = callable(IPython.get_ipython) and hasattr(IPython.display, 'HTML')")]
    errors = session.request("cells", cells=cells, names=[])
    ns = Namespace(session)
    assert errors["errors"] == [] and ns.x == 2 and ns.preloaded is False and ns.real is True
    sandbox.finish(session)


def _huge_pages_offered():
    try:
        return "[never]" not in open(sandbox_module.THP_SETTINGS + "/enabled").read()
    except OSError:
        return False


@pytest.mark.skipif(not _huge_pages_offered(), reason="this kernel offers no transparent huge pages")
def test_the_heap_every_world_inherits_is_on_huge_pages(sandbox):
    session = sandbox.open()
    session.request("cells", cells=[(1, "huge = [int(line.split()[1]) for line in open('/proc/self/smaps_rollup') "
                                        "if line.startswith('AnonHugePages:')]")], names=[])
    assert Namespace(session).huge[0] >= 16 << 10  # KiB: the zygote's heap (about 80 MiB on T04)
    sandbox.finish(session)


def test_the_kit_is_not_visible_inside(sandbox):
    session = sandbox.open()
    probe = ("import os, sys\nfound = sorted(os.listdir('/opt/gradekit/gradekit'))\n"
             "try:\n    import gradekit.assignments\n    imported = True\nexcept ImportError:\n    imported = False\n")
    session.request("cells", cells=[(1, probe)], names=[])
    ns = Namespace(session)
    assert ns.found == ["run"] and ns.imported is False
    sandbox.finish(session)


def test_student_errors_are_data_and_a_hang_is_cut_at_the_deadline(sandbox, monkeypatch):
    session = sandbox.open()
    session.request("cells", cells=[(1, SOLUTION)], names=["BatchNorm"])
    ns = Namespace(session)
    with pytest.raises(RemoteError, match="ValueError"):
        ns.BatchNorm((1, 2, 3))
    session.deadline = 0  # as if the wall-clock cap had passed
    with pytest.raises(Ended, match="timeout"):
        ns.BatchNorm((4, 5))
    assert sandbox.finish(session)["killed"] is True


def test_a_sandbox_that_died_between_jobs_is_replaced(grade, sandbox):
    assert [r.passed for r in grade("batchnorm", SOLUTION).core] == [True] * 10
    os.killpg(sandbox.process.pid, signal.SIGKILL)
    sandbox.process.wait()
    second = grade("batchnorm", SOLUTION)
    assert second.status == "ok" and [r.passed for r in second.core] == [True] * 10


def test_the_commands_start_their_sandboxes_before_importing_torch():
    """`gradekit check` and `autograde` boot a box while they import the rest (about two seconds
    of torch and nbgrader that it would otherwise wait for): nothing before that may import them."""
    code = ("import sys\nimport gradekit.cli, gradekit.grade.sandbox, gradekit.grade.submission\n"
            "print(sorted({'torch', 'nbgrader'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_boxes_booted_ahead_leave_the_grader_a_core_until_it_has_imported_torch(monkeypatch):
    """The grader's imports are the longer path to grading: of one box per core, one per other
    core boots at once (at least one), and start_all boots the rest."""
    monkeypatch.setattr(sandbox_module.os, "cpu_count", lambda: 3)
    with sandbox_module.boot_ahead(5) as booted:
        assert [box.process is not None for box in booted] == [True, True, False]
        sandbox_module.start_all(booted)
        assert all(box.process is not None for box in booted)
    assert all(box.process is None for box in booted)
    monkeypatch.setattr(sandbox_module.os, "cpu_count", lambda: 1)
    with sandbox_module.boot_ahead(2) as booted:
        assert [box.process is not None for box in booted] == [True]


def test_a_box_booted_ahead_takes_the_course_caps_or_gives_way_to_weak_mode(course):
    from gradekit.course import Sandbox as Settings
    memory_cell = [(1, "import resource\nlimit = resource.getrlimit(resource.RLIMIT_AS)[0]")]
    with sandbox_module.boot_ahead(1) as booted:
        box = booted[0].configure(Settings(memory_mb=1500))
        session = box.open()
        session.request("cells", cells=memory_cell, names=[])
        assert Namespace(session).limit == 1500 << 20
        box.finish(session)
        box.configure(Settings(mode="none"))  # weak mode: the bubblewrap box goes, a plain one starts on use
        assert box.process is None and not box.isolated
        session = box.open()
        session.request("cells", cells=memory_cell, names=[])
        assert Namespace(session).limit == 3072 << 20
        box.finish(session)
    assert box.process is None


def test_the_sandbox_starts_from_a_python_named_through_dotdot(tmp_path):
    """`../.venv/bin/python` from a course folder: that folder is not in the box, so the box
    must start Python by a path without it."""
    python = Path(os.path.abspath(sys.executable))
    roundabout = Path(*[".."] * (len(tmp_path.parts) - 1), python.relative_to("/"))  # Python keeps <cwd>/../..
    done = subprocess.run([str(roundabout), "-m", "gradekit.cli", "--course", str(COURSE), "sandbox"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_kit_refuses_to_grade_unsandboxed_unless_told(monkeypatch):
    monkeypatch.setattr(sandbox_module, "bwrap_problem", lambda: "bubblewrap is not installed")
    with pytest.raises(SandboxError, match="Sandbox.mode = 'none'"):
        sandbox_module.check_mode("bwrap")
    sandbox_module.check_mode("none")  # opted into: no error


def test_a_python_install_under_tmp_stays_importable(course, tmp_path, monkeypatch):
    """A course cloned under /tmp (as a CI run may) has its virtual environment there, where each
    submission gets a fresh scratch tmpfs: what the zygote did not import must stay importable."""
    packages = tmp_path / "site"  # pytest's tmp_path lies under /tmp
    packages.mkdir()
    (packages / "gk_below_tmp.py").write_text("ANSWER = 42\n")
    prefixes = sandbox_module._python_prefixes()
    monkeypatch.setattr(sandbox_module, "_python_prefixes", lambda: prefixes + [str(packages)])
    with sandbox_module.Sandbox(course.sandbox) as box:
        session = box.open()
        code = (f"import os, sys\nsys.path.insert(0, {str(packages)!r})\nimport gk_below_tmp\n"
                "answer = gk_below_tmp.ANSWER\nopen('/tmp/mine', 'w').write('scratch')\n"
                f"try:\n    open({str(packages / 'planted')!r}, 'w')\n    planted = True\n"
                "except OSError:\n    planted = False\n")
        reply = session.request("cells", cells=[(1, code)], names=[])
        ns = Namespace(session)
        assert reply["errors"] == [] and ns.answer == 42 and ns.planted is False
        box.finish(session)
    assert str(packages).startswith("/tmp/")


PIPELINE_CELL = """
log = []
class Thing:
    def __init__(self, n):
        self.n = n
    def step(self, k):
        log.append(k)
        if k == 'boom':
            raise ValueError('boom at ' + str(self.n))
        return self.n + (k if isinstance(k, int) else 0)
class Holder:
    def __init__(self, t):
        self.t = t
    def bump(self):
        self.t.add_(1)
freed = []
class Tracked:
    def __init__(self, name):
        self.name = name
    def __del__(self):
        freed.append(self.name)
"""


def pipeline_session(sandbox, monkeypatch):
    """(session, ns, frames) with PIPELINE_CELL run; `frames` gets the operation count of each frame sent."""
    session = sandbox.open()
    session.request("cells", cells=[(1, PIPELINE_CELL)], names=[])
    send, frames = wire.send, []
    monkeypatch.setattr(wire, "send", lambda sock, message, *a: frames.append(len(message["ops"])) or send(sock, message, *a))
    return session, Namespace(session), frames


def test_a_pipelined_block_costs_one_round_trip_and_keeps_the_results(sandbox, monkeypatch):
    session, ns, frames = pipeline_session(sandbox, monkeypatch)
    with ns.pipelined():
        thing = ns.Thing(40)
        got = [thing.step(k) for k in (1, 2)]
        thing.n = 7
        later = thing.step(3)
    assert frames == [9]  # nine operations, one frame, one wait
    assert ns.read([got, later, thing.n]) == [[41, 42], 10, 7]  # plain values, held as handles until read
    frames.clear()
    with ns.pipelined():
        first = ns.read(thing.step(1))  # a read needs its answer: it goes with what was recorded
        thing.n = 8
    assert frames == [3, 1] and first == 8 and ns.read(thing.n) == 8
    sandbox.finish(session)


def test_what_the_grader_drops_is_freed_in_the_student_process(sandbox, monkeypatch):
    session, ns, frames = pipeline_session(sandbox, monkeypatch)
    one = ns.Tracked("one")  # made one operation at a time
    with ns.pipelined():
        two = ns.Tracked("two")
        ns.read(two.name)  # a frame goes, then the proxies die: freed with the next frame
        ns.Tracked("three").name  # made and dropped in the same frame: never kept
        kept_for_a_while = ns.Tracked("four")
        ns.read(ns.same(ns.Tracked("five"), kept_for_a_while))  # used in its frame, freed with the next
        six = ns.Tracked("six")
        ns.read(six.name)
        name = six.name
        del six  # gone before the frame that uses it is sent: freed with the one after
        assert ns.read(name) == "six"
    del one, two, kept_for_a_while
    assert sorted(ns.read(ns.freed)) == ["five", "four", "one", "six", "three", "two"]
    sandbox.finish(session)


def test_identity_is_asked_where_the_objects_live(sandbox, monkeypatch):
    session, ns, frames = pipeline_session(sandbox, monkeypatch)
    with ns.pipelined():
        thing = ns.Thing(1)
        again, other = thing.n, ns.Thing(1).n  # the same int object, and another Thing's
        log = ns.log
        answers = ns.read([ns.same(ns.log, log), ns.same(ns.log, ns.Thing(2)), ns.same(thing.step, None),
                           ns.same(log, None)])
    assert frames == [17] and answers == [True, False, False, False]  # one frame, though every proxy is new
    assert ns.same(thing, thing) is True and ns.same(again, other) is True  # one at a time, too (1 is 1)
    sandbox.finish(session)


def test_a_pipelined_error_surfaces_in_order_and_nothing_after_it_runs(sandbox, monkeypatch):
    session, ns, _ = pipeline_session(sandbox, monkeypatch)
    with pytest.raises(RemoteError, match="boom at 1"):
        with ns.pipelined():
            thing = ns.Thing(1)
            thing.step(1)
            thing.step("boom")
            thing.step(2)  # recorded, but skipped by the student's process
            thing.n = 99
            raise KeyError("a local error after the remote one loses to it")
    assert ns.read(ns.log) == [1, "boom"] and ns.read(thing.n) == 1
    with pytest.raises(RemoteError, match="NameError"):  # an error before a read that needs its answer
        with ns.pipelined():
            ns.Missing(1)
            list(ns.log)
    assert ns.read(ns.Thing(5).step(1)) == 6  # the session goes on, one operation at a time
    sandbox.finish(session)


def test_a_pipelined_block_is_sent_in_bounded_frames(sandbox, monkeypatch):
    from gradekit.grade import remote
    session, ns, frames = pipeline_session(sandbox, monkeypatch)
    with ns.pipelined():
        thing = ns.Thing(0)
        for k in range(remote.MAX_BATCH):
            thing.step(k)
    assert max(frames) == remote.MAX_BATCH and sum(frames) == 2 + 2 * remote.MAX_BATCH
    assert ns.read(ns.log) == list(range(remote.MAX_BATCH))
    sandbox.finish(session)


def test_pipelined_results_nobody_holds_are_not_kept(sandbox):
    session = sandbox.open()
    session.request("cells", cells=[(1, "import weakref\nclass Obj:\n    pass\nlive = weakref.WeakSet()\n"
                                        "def make():\n    o = Obj()\n    live.add(o)\n    return o\n"
                                        "def count():\n    return len(live)\n")], names=[])
    ns = Namespace(session)
    with ns.pipelined():
        for _ in range(10):
            ns.make()  # as `bn(batch)` in a training loop: its result dies with the statement
        kept = ns.make()
        alive = ns.count()
    assert ns.read(alive) == 1 and kept is not None
    sandbox.finish(session)


def test_an_upload_that_fails_is_the_first_operations_error(sandbox, monkeypatch):
    session, ns, frames = pipeline_session(sandbox, monkeypatch)
    with pytest.raises(RemoteError, match="KeyError"):
        with ns.pipelined():
            thing = ns.Thing(1)
            thing.step(ns.put(torch.ones(2)))
            upload, data = session._uploads[0]
            session._uploads[0] = ({**upload, "master": 99}, None)  # as a copy the process cannot make
    assert frames[-1] == 4 and ns.read(ns.log) == []  # nothing ran, and the session goes on
    sandbox.finish(session)


def test_a_batterys_inputs_cross_once_per_box_and_every_world_starts_with_them(sandbox, monkeypatch):
    inputs = [torch.randn(4, 3, dtype=torch.float64), torch.arange(6).reshape(2, 3).t(), torch.ones(2)]
    preload = Preload(inputs + [inputs[0]])
    send, control = frames.send, []
    monkeypatch.setattr(frames, "send", lambda sock, document, *a, **k: control.append(document) or send(sock, document, *a, **k))
    for restart in (False, False, True):
        if restart:
            sandbox.stop()  # a box started again is given them again
        session = sandbox.open(preload)
        ns = Namespace(session)
        copies = [ns.put(t) for t in inputs]
        assert [data for _, data in session._uploads] == [None] * 3  # no bytes cross
        assert all(torch.equal(ns.read(c), t) for c, t in zip(copies, inputs))
        copies[0].add_(1)  # this world's copy only: the next starts from the grader's values
        sandbox.finish(session)
    assert [d["preload"] for d in control if "preload" in d] == [preload.name] * 2


def test_a_checks_writes_come_back_with_its_frames(sandbox, monkeypatch):
    session = sandbox.open()
    session.request("cells", cells=[(1, PIPELINE_CELL)], names=[])
    ns = Namespace(session)
    send, sent = wire.send, []
    monkeypatch.setattr(wire, "send", lambda sock, message, *a: sent.append([op["op"] for op in message["ops"]])
                        or send(sock, message, *a))
    x = torch.zeros(3)
    session.new_scope()
    with ns.pipelined():
        holder = ns.Holder(ns.put(x))
    assert session.writes() == [] and sent == [["global", "call"]]  # no request of its own
    holder.bump()
    before = len(sent)
    [(tensor, now)] = session.writes()
    assert tensor is x and torch.equal(now, torch.ones(3))
    assert sent[before:] == [["read"]]  # the write was known from bump's frame: only its value is read
    holder.bump()
    session._versions = {}  # as after a frame that did not cover the copies: writes() asks
    [(_, now)] = session.writes()
    assert torch.equal(now, torch.full((3,), 2.0)) and sent[-2:] == [["versions"], ["read"]]
    sandbox.finish(session)


def made(ns, n, tag):
    """A fixture: a Thing whose making the student's log records (`tag` only tells fixtures apart)."""
    thing = ns.Thing(n)
    thing.step(n)
    return thing


def test_a_fixture_is_made_once_in_a_pass_and_again_where_an_error_skipped_it(sandbox, monkeypatch):
    session, ns, _ = pipeline_session(sandbox, monkeypatch)
    one, two = object(), object()  # unequal arguments: two fixtures
    with ns.pipelined():
        first = ns.once(made, 1, one)
        assert ns.once(made, 1, one) is first
    session.new_scope()  # the next check
    assert ns.once(made, 1, one) is first and ns.read(ns.log) == [1]
    with pytest.raises(RemoteError, match="boom"):
        with ns.pipelined():
            ns.Thing(0).step("boom")
            ns.once(made, 2, two)  # recorded after the error: skipped
    assert ns.read(ns.log) == [1, "boom"]
    again = ns.once(made, 2, two)
    assert ns.read(again.n) == 2 and ns.read(ns.log) == [1, "boom", 2]
    assert ns.once(made, 2, two) is again
    shared = ns.once(made, 7, {"x": torch.arange(3.0)})
    assert ns.once(made, 7, {"x": torch.arange(3.0)}) is shared  # equal values, as two modules' inputs
    assert ns.once(made, 7, {"x": torch.arange(3.0) + 1}) is not shared and ns.read(ns.log)[-2:] == [7, 7]
    replay = Namespace(session, share=False)  # the pass that replays the original: every check makes its own
    assert replay.once(made, 3, one) is not replay.once(made, 3, one) and ns.read(ns.log)[-2:] == [3, 3]
    sandbox.finish(session)


def test_what_a_later_check_writes_into_a_fixtures_inputs_counts_as_its_writes(sandbox, monkeypatch):
    session, ns, _ = pipeline_session(sandbox, monkeypatch)
    given = torch.zeros(3)
    holding = lambda ns, t: ns.Holder(t)  # noqa: E731 (the upload happens in the fixture)
    with ns.pipelined():
        holder = ns.once(holding, given)
    assert session.writes() == []
    session.new_scope()
    ns.once(holding, given).bump()
    (tensor, now), = session.writes()
    assert tensor is given and torch.equal(now, torch.ones(3)) and torch.equal(given, torch.zeros(3))
    session.new_scope()
    assert ns.once(holding, given) is holder and session.writes() == []  # seen already: not a new write
    sandbox.finish(session)
