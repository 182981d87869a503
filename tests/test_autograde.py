"""`gradekit autograde` on a class mixing correct, buggy, hostile and broken submissions.

Each attack is written so that, if it worked, it would change a verdict: its own (tampering,
reading course files, reaching the network) or a later student's (leftover processes or files).
tests/test_attacks.py holds the attacks aimed at the grader itself.
"""
import csv
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import COURSE, copy_course
from gradekit import contract
from gradekit.build.release import nbgrader_command, nbgrader_env
from gradekit.course import Course
from gradekit.errors import SandboxError
from gradekit.grade import autograde as autograde_module
from gradekit.grade.autograde import autograde
from gradekit.grade.report import pass_rates
from gradekit.grade.results import Result
from gradekit.grade.sandbox import Cgroup, Sandbox, boot_ahead
from gradekit.grade.submission import code_cells
from gradekit.grade.workers import alongside
from mutants import batchnorm

SOLUTION = batchnorm.SOLUTION
BIASED = next(m for m in batchnorm.MUTANTS if m.name == "biased-variance").code()
FORWARD = "    def forward(self, x):\n"


def skeleton():
    cells = code_cells(COURSE / "release" / "batchnorm" / "batchnorm.ipynb", contract.get("batchnorm").kit_cell)
    return "\n".join(source for _, source in cells)


def only_if(condition):
    """A submission that is the reference solution unless `condition` (student code) is true,
    in which case it is the skeleton: a successful attack shows up as 0/10."""
    return f"import os, socket\ntry:\n    ATTACK_WORKED = bool({condition})\nexcept Exception:\n    ATTACK_WORKED = False\n" \
           + SOLUTION + "\nif ATTACK_WORKED:\n" + "\n".join("    " + line for line in skeleton().splitlines())


def class_with(course, submissions, assignment="batchnorm"):
    for student, cells in submissions.items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        (folder / f"{assignment}.ipynb").write_text(nbformat.writes(new_notebook(cells=[new_code_cell(c) for c in cells])))


def verdicts(result):
    return [r.passed for r in result.core]


@pytest.fixture(scope="module")
def listener():
    """A TCP server on loopback: a submission that reaches it has network access."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    threading.Thread(target=lambda: [server.accept() for _ in range(100)], daemon=True).start()
    yield server.getsockname()[1]
    server.close()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, listener):
    course = copy_course(tmp_path_factory.mktemp("course"))
    with open(course / "grader_config.py", "a") as config:
        config.write("\nc.Sandbox.wall_seconds = 20\nc.Sandbox.cpu_seconds = 6\nc.Sandbox.memory_mb = 2500\n")
    secret = course / "source" / "batchnorm" / "batchnorm.ipynb"
    submissions = {
        "a01-solution": [SOLUTION],
        "a02-skeleton-allclose": [skeleton(), "import torch\ntorch.allclose = lambda *a, **k: True\n"
                                  "torch.Tensor.__eq__ = lambda *a, **k: True"],
        "a03-biased-randn": [BIASED, "import torch\ntorch.randn = lambda *s, **k: torch.zeros(*s)\n"
                             "torch.rand = lambda *s, **k: torch.ones(*s)\n"
                             "torch.var = lambda x, *a, **k: x.var(*a, correction=0, **k)"],
        "a04-exit-in-forward": [SOLUTION.replace(FORWARD, FORWARD + "        __import__('os')._exit(0)\n")],
        "a05-reads-course": [only_if(f"open({str(secret)!r}).read()")],
        "a06-network": [only_if(f"socket.create_connection(('127.0.0.1', {listener}), timeout=2)")],
        "a07-writes-course": [f"try:\n    open({str(course / 'pwned')!r}, 'w').write('x')\nexcept OSError:\n    pass\n"
                              + SOLUTION],
        "a08-leaves-traces": [SOLUTION + "\nimport os, subprocess\nopen('/tmp/trace', 'w').write('x')\n"
                              "open('trace', 'w').write('x')\nsubprocess.Popen(['sleep', '1000'])"],
        "a09-sees-traces": [only_if("os.path.exists('/tmp/trace') or os.path.exists('trace') or any('sleep' in "
                                    "open(f'/proc/{p}/cmdline').read() for p in os.listdir('/proc') if p.isdigit())")],
        "a10-hangs": [SOLUTION, "import time\ntime.sleep(1000)"],
        "a10b-spins": [SOLUTION, "while True:\n    pass"],
        "a11-floods-output": [SOLUTION, "for _ in range(200000):\n    print('spam' * 50)"],
        "a12-eats-memory": [SOLUTION, "hog = bytearray(50 * 1024 ** 3)"],
        "a13-kills-itself": [SOLUTION, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"],
        "a14-kills-everything": [SOLUTION, "import os, signal\nos.kill(-1, signal.SIGKILL)"],
        "a15-after-the-killer": [SOLUTION],
        "a16-syntax-error": ["print('intro')", "class BatchNorm(:"],
        "a18-forks-many": [SOLUTION, "import os, time\nspawned = 0\ntry:\n    for _ in range(1000):\n"
                           "        if os.fork() == 0:\n            time.sleep(60)\n            os._exit(0)\n"
                           "        spawned += 1\nexcept OSError:\n    raise RuntimeError(f'stopped after {spawned}')"],
        "a17-class-in-odd-cell": ["print('intro')", "x = 1 / 0", SOLUTION.replace("class BatchNorm", "class Other"),
                                  "BatchNorm = Other"],
    }
    class_with(course, submissions)
    nbgrader_form = course / "submitted" / "a00-source-notebook" / "batchnorm"
    nbgrader_form.mkdir(parents=True)
    (nbgrader_form / "batchnorm.ipynb").write_text(secret.read_text())
    misnamed = course / "submitted" / "a19-misnamed" / "batchnorm"
    misnamed.mkdir(parents=True)
    (misnamed / "BatchNorm final.ipynb").write_text(secret.read_text())
    (course / "submitted" / "a20-empty-folder" / "batchnorm").mkdir(parents=True)
    (course / "submitted" / "a21-other-course" / "rnn").mkdir(parents=True)
    results = autograde(Course(course), workers=2, progress=False)
    return course, {r.student: r for r in results}


def test_honest_submissions(graded):
    _, rows = graded
    for student in ("a01-solution", "a00-source-notebook", "a17-class-in-odd-cell", "a15-after-the-killer"):
        assert verdicts(rows[student]) == [True] * 10, (student, rows[student].message)


def test_tampering_with_torch_earns_nothing(graded):
    _, rows = graded
    assert verdicts(rows["a02-skeleton-allclose"]) == [False] * 10
    assert [n for n, ok in enumerate(verdicts(rows["a03-biased-randn"])) if not ok] == [5, 6, 8]


def test_faults_end_in_their_own_row(graded):
    _, rows = graded
    row = rows["a04-exit-in-forward"]
    assert row.status == "exited" and verdicts(row) == [True] * 3 + [False] * 7
    for student, status in (("a10-hangs", "timeout"), ("a10b-spins", "cpu-limit"), ("a13-kills-itself", "crashed")):
        assert rows[student].status == status, rows[student].message
        assert verdicts(rows[student]) == [False] * 10  # the class was defined, but no probe ran
    # kill(-1) reaches nothing outside the submission's own PID namespace: not the sandbox, not the grader
    assert verdicts(rows["a14-kills-everything"]) == [True] * 10
    assert "ProcessLookupError" in rows["a14-kills-everything"].message
    assert rows["a11-floods-output"].status == "ok" and verdicts(rows["a11-floods-output"]) == [True] * 10
    assert rows["a12-eats-memory"].status == "memory" and verdicts(rows["a12-eats-memory"]) == [True] * 10
    assert rows["a16-syntax-error"].status == "not-defined" and "cell 2: SyntaxError" in rows["a16-syntax-error"].message
    assert rows["a19-misnamed"].status == "misnamed" and "BatchNorm final.ipynb" in rows["a19-misnamed"].message
    assert rows["a20-empty-folder"].status == "missing"
    assert rows["a21-other-course"].status == "unknown-assignment" and "'rnn'" in rows["a21-other-course"].message
    assert verdicts(rows["a18-forks-many"]) == [True] * 10
    if Cgroup.root("pids"):  # where the kit can make a cgroup, processes are capped per sandbox
        assert "RuntimeError: stopped after" in rows["a18-forks-many"].message


def test_sandbox_hides_course_network_and_other_students(graded):
    course, rows = graded
    assert verdicts(rows["a05-reads-course"]) == [True] * 10, "a submission could read the source notebook"
    assert verdicts(rows["a06-network"]) == [True] * 10, "a submission reached the network"
    assert not (course / "pwned").exists(), "a submission wrote into the course directory"
    assert verdicts(rows["a09-sees-traces"]) == [True] * 10, "a submission saw what an earlier one left"


def test_outputs(graded):
    course, rows = graded
    out = course / "autograded"
    table = list(csv.DictReader((out / "grades.csv").open()))
    assert len(table) == len(rows)
    columns = set(table[0])
    assert {"student_id", "assignment", "score", "max_score", "status", "message"} <= columns
    assert {f"check_{n}" for n in range(10)} <= columns
    assert {"hidden_registered_parameters", "hidden_gradients"} <= columns
    by_student = {row["student_id"]: row for row in table}
    assert by_student["a01-solution"]["hidden_gradients"] == "1" and by_student["a03-biased-randn"]["hidden_gradients"] == "0"
    assert by_student["a01-solution"]["score"] == "10" and by_student["a02-skeleton-allclose"]["score"] == "0"
    assert by_student["a04-exit-in-forward"]["check_2"] == "1" and by_student["a04-exit-in-forward"]["check_3"] == "0"
    results = json.loads((out / "a04-exit-in-forward" / "batchnorm" / "results.json").read_text())
    assert results["score"] == 3 and len([t for t in results["tests"] if t["status"] == "passed"]) == 3
    assert {t["visibility"] for t in results["tests"] if t["name"].startswith("hidden")} == {"after_published"}
    assert results["visibility"] == "visible"  # the total stays visible while hidden checks are hidden
    feedback = (out / "a03-biased-randn" / "batchnorm" / "feedback.html").read_text()
    assert "unbiased variance" in feedback and "assert_check" not in feedback and "probe" not in feedback
    assert "fix those first" in feedback
    assert "fix those first" not in (out / "a01-solution" / "batchnorm" / "feedback.html").read_text()
    assert "6 discussion questions" in feedback
    syntax = (out / "a16-syntax-error" / "batchnorm" / "feedback.html").read_text()
    assert syntax.count("cell 2: SyntaxError") == 1 and "No check could look at your code" in syntax
    autograded = nbformat.read(str(out / "a00-source-notebook" / "batchnorm" / "batchnorm.ipynb"), as_version=4)
    outputs = [c.outputs[0].text for c in autograded.cells
               if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("check-")]
    assert len(outputs) == 10 and all(text.endswith(": Pass\n") for text in outputs)
    assert not (out / "a19-misnamed" / "batchnorm" / "batchnorm.ipynb").exists()
    page = (out / "report.html").read_text()
    assert (out / "report.png").stat().st_size > 10000 and "Needs your attention" in page
    assert "a01-solution/batchnorm/feedback.html" in page and "10 / 10" in page


def test_gradebook_and_nbgrader_feedback(graded):
    course, _ = graded
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        assert gradebook.find_submission("batchnorm", "a01-solution").code_score == 10
        assert gradebook.find_submission("batchnorm", "a04-exit-in-forward").code_score == 3
    done = subprocess.run(nbgrader_command("generate_feedback", "batchnorm"), cwd=course, capture_output=True,
                          text=True, env=nbgrader_env())
    assert done.returncode == 0, done.stderr
    page = (course / "feedback" / "a00-source-notebook" / "batchnorm" / "batchnorm.html").read_text()
    assert "(Score: 10.0 / 16.0)" in page


def test_grading_never_writes_source_or_release(graded):
    course, _ = graded
    for folder in ("source", "release"):
        for path in (course / folder).rglob("*"):
            if path.is_file():
                assert path.read_bytes() == (COURSE / path.relative_to(course)).read_bytes(), path


def test_rerun_grades_nothing_new_and_force_grades_again(graded, monkeypatch):
    course, rows = graded

    class NoSandbox:
        def __init__(self, *args, **kwargs):
            raise AssertionError("a re-run started a sandbox for an unchanged submission")

    monkeypatch.setattr("gradekit.grade.autograde.Sandbox", NoSandbox)
    again = {r.student: r for r in autograde(Course(course), workers=1, progress=False)}
    assert {s: verdicts(r) for s, r in again.items()} == {s: verdicts(r) for s, r in rows.items()}
    monkeypatch.undo()
    forced = autograde(Course(course), workers=1, students={"a01-solution"}, force=True, progress=False)
    assert [(r.student, verdicts(r)) for r in forced] == [("a01-solution", [True] * 10)]


def test_pass_rates_count_only_submissions_that_ran(graded):
    _, rows = graded
    honest = rows["a01-solution"]
    broken = Result.failed("x", "batchnorm", "malformed", "bad JSON", [r.check for r in honest.checks])
    assert pass_rates([honest, broken])[0][1] == 1.0


def test_interrupted_run_resumes_with_the_same_grades(tmp_path):
    course = copy_course(tmp_path)
    class_with(course, {f"s{n:02d}": [m.code()] for n, m in enumerate(batchnorm.MUTANTS)})
    command = [sys.executable, "-m", "gradekit.cli", "--course", str(course), "autograde", "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=COURSE)
    state = course / "autograded" / "state.db"

    def saved():
        import sqlite3
        try:
            with sqlite3.connect(state) as db:
                return db.execute("SELECT count(*) FROM graded").fetchone()[0]
        except sqlite3.Error:
            return 0

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and saved() < 3:
        time.sleep(0.2)
    process.kill()
    process.wait()
    before = saved()
    assert 3 <= before < len(batchnorm.MUTANTS)
    subprocess.run(command + ["--timeline", str(tmp_path / "timeline.json")], capture_output=True, cwd=COURSE)
    report = json.loads((tmp_path / "timeline.json").read_text())  # what `make bench` reads
    phases = report["timeline"]
    assert phases["start"] < phases["prepared"] < phases["graded"] < phases["recorded"] <= phases["written"]
    assert len(phases["finished"]) == len(batchnorm.MUTANTS) - before and report["peak_mib"] > 100
    table = {row["student_id"]: row for row in csv.DictReader((course / "autograded" / "grades.csv").open())}
    assert len(table) == len(batchnorm.MUTANTS)
    for n, mutant in enumerate(batchnorm.MUTANTS):
        if mutant.expected_failures is not None:
            failed = {k for k in range(10) if table[f"s{n:02d}"][f"check_{k}"] == "0"}
            assert failed == mutant.expected_failures, mutant.name


def test_grades_do_not_depend_on_workers_or_runs(tmp_path):
    """The same class graded from a cold start with 1, 2 and 3 workers, and with a box booted
    ahead (as the command does): identical rows."""
    runs = []
    for workers, ahead in ((1, 0), (2, 0), (3, 0), (2, 1)):
        course = copy_course(tmp_path / f"run{len(runs)}")
        class_with(course, {f"s{n:02d}": [m.code()] for n, m in enumerate(batchnorm.MUTANTS)})
        with boot_ahead(ahead) as booted:
            rows = autograde(Course(course), workers=workers, progress=False, booted=booted)
        runs.append([(r.student, r.status, [(c.passed, c.message) for c in r.checks]) for r in rows])
    assert all(run == runs[0] for run in runs[1:])


def test_a_grading_process_that_dies_costs_only_its_own_row(tmp_path, monkeypatch):
    """A worker process killed mid-submission (a bug of the grader's, the machine's OOM killer):
    that row says so and is graded again by the next run; the other workers grade the rest. With
    no worker left, the rows not graded say so too, and the run ends."""
    course = copy_course(tmp_path)
    class_with(course, {"a-killed": [SOLUTION], "b": [SOLUTION], "c": [SOLUTION]})
    grade_one = autograde_module._grade_one

    def killed_on_a(course, sandbox, submission, *args):
        if submission.student == "a-killed":
            os.kill(os.getpid(), signal.SIGKILL)
        return grade_one(course, sandbox, submission, *args)

    monkeypatch.setattr(autograde_module, "_grade_one", killed_on_a)  # the forked workers have it too
    rows = autograde(Course(course), workers=2, progress=False)
    assert [(r.student, r.status) for r in rows] == [("a-killed", "grader-error"), ("b", "ok"), ("c", "ok")]
    assert "grading process ended" in rows[0].message
    rows = autograde(Course(course), workers=1, force=True, progress=False)  # the only worker dies on its first
    assert [r.status for r in rows] == ["grader-error"] * 3
    monkeypatch.undo()
    rows = autograde(Course(course), workers=1, progress=False)
    assert [verdicts(r) for r in rows] == [[True] * 10] * 3


def test_a_step_alongside_runs_in_its_own_process_and_its_failure_is_the_callers(tmp_path, capfd):
    """The class's report is written by a forked process beside the gradebook's transaction.
    Where that process fails, the grader runs the step itself: the files are still written, or
    the step's own error is raised here, and the helper prints no traceback."""
    grader = os.getpid()
    ran_in = []

    def write(path):
        ran_in.append(os.getpid())  # seen only by the process that appends
        if os.getpid() != grader:
            path.write_text(str(os.getpid()))

    with alongside(write, tmp_path / "out"):
        pass
    assert int((tmp_path / "out").read_text()) != grader and ran_in == []

    def fails_in_the_helper(path):
        if os.getpid() != grader:
            os._exit(3)
        path.write_text("by the grader")

    with alongside(fails_in_the_helper, tmp_path / "again"):
        pass
    assert (tmp_path / "again").read_text() == "by the grader"

    def always_fails(path):
        raise OSError(f"cannot write {path.name}")

    with pytest.raises(OSError, match="cannot write never"):
        with alongside(always_fails, tmp_path / "never"):
            pass
    assert "Traceback" not in capfd.readouterr().err


def test_a_box_booted_ahead_grades_or_is_stopped_at_once(tmp_path, monkeypatch):
    course = copy_course(tmp_path)
    class_with(course, {"solo": [SOLUTION]})
    with boot_ahead(1) as booted:
        def no_other_box(sandbox):
            raise SandboxError("a box other than the one booted ahead")

        monkeypatch.setattr(Sandbox, "start", no_other_box)  # the worker forked from here has it too
        rows = autograde(Course(course), progress=False, booted=booted)
        assert [verdicts(r) for r in rows] == [[True] * 10]  # so the booted box graded the class
        monkeypatch.undo()
    with boot_ahead(1) as booted:
        autograde(Course(course), progress=False, booted=booted)  # nothing changed: nothing to grade
        assert booted[0].process is None  # stopped then, not at the end of the block


def test_grading_collects_again_and_leaves_nothing_frozen(tmp_path):
    """`gradekit autograde` imports with the cyclic collector off (cli.py): grading turns it back
    on, with what existed before frozen, and unfreezes it at the end."""
    course = copy_course(tmp_path)
    class_with(course, {"solo": [SOLUTION]})
    gc.disable()
    try:
        rows = autograde(Course(course), workers=1, progress=False)
        assert [verdicts(r) for r in rows] == [[True] * 10]
        assert gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_an_unreadable_state_file_means_grading_again(tmp_path, capsys):
    course = copy_course(tmp_path)
    class_with(course, {"solo": [SOLUTION]})
    state = course / "autograded" / "state.db"
    state.parent.mkdir()
    state.write_text("this is not a database")
    rows = autograde(Course(course), workers=1, progress=False)
    assert [verdicts(r) for r in rows] == [[True] * 10]
    assert "unreadable" in capsys.readouterr().err
