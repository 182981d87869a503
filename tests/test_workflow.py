"""The course as people live it (issue 11), step by step and from the command line.

- Submission times and late penalties: `timestamp.txt` (written by `nbgrader collect`) reaches
  gradebook.db, nbgrader's LateSubmissionPlugin zeroes a late submission, and `nbgrader export` and
  nbgrader's feedback show the penalty; an on-time submission is untouched.
- The exchange round trip in a throwaway git clone of this checkout: `make exchange`,
  release_assignment, fetch and submit as students (each with a HOME of their own), collect,
  `gradekit autograde`, generate_feedback, export; afterwards `git status` is clean.
- One score story: the kit's feedback page and nbgrader's agree, or say what each counts; hidden
  checks without points show no "0 / 0".
- Gradescope: setup.sh picks the interpreter and fails the image build when the sandbox cannot
  start (run against fake apt-get, make and Pythons); run_autograder refuses in one line.
"""
import csv
import datetime
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from conftest import COURSE, copy_course
from gradekit import contract, gradescope
from gradekit.build.release import nbgrader_command, nbgrader_env
from gradekit.course import Course
from gradekit.grade import report
from gradekit.grade.autograde import autograde
from gradekit.grade.results import CheckResult, Result
from mutants import batchnorm as mutants

ASSIGNMENT = contract.get("batchnorm")
COURSE_ID = "deep-learning"  # grader_config.py's CourseDirectory.course_id
BIASED = next(m for m in mutants.MUTANTS if m.name == "biased-variance")  # fails checks 5, 6 and 8


def run(command, cwd, env=None, check=True):
    done = subprocess.run(command, cwd=cwd, env=env or nbgrader_env(), capture_output=True, text=True)
    if check:
        assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done


def hermetic_env(home, **extra):
    """This venv first on PATH, a HOME of its own, no Jupyter settings from whoever runs the tests."""
    env = {k: v for k, v in nbgrader_env().items() if not k.startswith("JUPYTER")}
    return {**env, "HOME": str(home), **extra}


def answers():
    """{cell id: the reference's source} of every cell students write (class and questions)."""
    notebook = nbformat.read(COURSE / "source" / "batchnorm" / "batchnorm.ipynb", as_version=4)
    return {c.metadata.nbgrader["grade_id"]: c.source for c in notebook.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def complete(path, mutant=None, answered=0):
    """What a student does to the released notebook at `path`: writes the class (the reference,
    or a realistic wrong one) and answers the first `answered` questions."""
    reference = answers()
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        cell_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if cell_id == "batchnorm-class":
            cell.source = reference[cell_id]
            for old, new in (mutant.edits if mutant else ()):
                assert old in cell.source, (mutant.name, old)
                cell.source = cell.source.replace(old, new)
        elif cell_id.startswith("question-") and int(cell_id.split("-")[1]) <= answered:
            cell.source = reference[cell_id]
    nbformat.write(notebook, path)


def hand_in(course, student, timestamp=None):
    """A submission as `nbgrader collect` leaves it: the notebook, and the time it was submitted."""
    folder = course / "submitted" / student / "batchnorm"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "batchnorm.ipynb").write_bytes((COURSE / "release" / "batchnorm" / "batchnorm.ipynb").read_bytes())
    complete(folder / "batchnorm.ipynb")
    if timestamp:
        (folder / "timestamp.txt").write_text(timestamp)


def words(page):
    """A page's text with its whitespace collapsed, as a browser shows it."""
    return " ".join(page.split())


def exported(course):
    """`nbgrader export`'s grades.csv, by student."""
    run(nbgrader_command("export"), cwd=course)
    return {row["student_id"]: row for row in csv.DictReader((course / "grades.csv").open())}


# ---- submission times and late penalties ------------------------------------------------------

DUE = "2024-03-01 12:00:00 UTC"


@pytest.fixture(scope="module")
def late_class(tmp_path_factory):
    """Due at noon UTC. The times are in Berlin (UTC+1 in March), as `nbgrader submit` writes
    them under c.Exchange.timezone = "Europe/Berlin": `ontime` is later than noon on the wall
    clock but on time; `late` is half an hour late."""
    course = copy_course(tmp_path_factory.mktemp("late"))
    with open(course / "grader_config.py", "a") as config:
        config.write('\nc.LateSubmissionPlugin.penalty_method = "zero"\n')
    run(nbgrader_command("db", "assignment", "add", "batchnorm", f"--duedate={DUE}"), cwd=course)
    hand_in(course, "late", "2024-03-01 13:30:00.000000 CET")
    hand_in(course, "ontime", "2024-03-01 12:59:00.000000 CET")
    hand_in(course, "unstamped")  # an LMS export: no submission time, never late
    rows = autograde(Course(course), workers=2, progress=False)
    assert [(r.student, r.status, r.score) for r in rows] == [(s, "ok", 10) for s in ("late", "ontime", "unstamped")]
    return course


def gradebook_of(course):
    return Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID)


def test_submission_times_reach_the_gradebook(late_class):
    with gradebook_of(late_class) as gradebook:
        late, ontime, unstamped = (gradebook.find_submission("batchnorm", s) for s in ("late", "ontime", "unstamped"))
        assert late.timestamp == datetime.datetime(2024, 3, 1, 12, 30) and late.total_seconds_late == 1800
        assert ontime.timestamp == datetime.datetime(2024, 3, 1, 11, 59) and ontime.total_seconds_late == 0
        assert unstamped.timestamp is None and unstamped.total_seconds_late == 0


def test_late_penalty_zeroes_the_late_submission_and_export_shows_it(late_class):
    with gradebook_of(late_class) as gradebook:
        penalties = {s: gradebook.find_submission_notebook("batchnorm", "batchnorm", s).late_submission_penalty
                     for s in ("late", "ontime", "unstamped")}
    assert penalties == {"late": 10, "ontime": None, "unstamped": None}
    grades = exported(late_class)
    assert {s: (row["timestamp"], row["raw_score"], row["late_submission_penalty"], row["score"])
            for s, row in grades.items()} == {
        "late": ("2024-03-01 12:30:00", "10.0", "10.0", "0.0"),
        "ontime": ("2024-03-01 11:59:00", "10.0", "0.0", "10.0"),
        "unstamped": ("", "10.0", "0.0", "10.0")}


def test_nbgrader_feedback_shows_the_penalty(late_class):
    run(nbgrader_command("generate_feedback", "batchnorm"), cwd=late_class)
    late = (late_class / "feedback" / "late" / "batchnorm" / "batchnorm.html").read_text()
    ontime = (late_class / "feedback" / "ontime" / "batchnorm" / "batchnorm.html").read_text()
    assert "(Score: 0.0 / 16.0)" in late and "Late submission penalty (Score: -10.0)" in late
    assert "(Score: 10.0 / 16.0)" in ontime and "Late submission penalty" not in ontime


def test_a_resubmission_is_graded_again_and_the_penalty_counts_hand_grades(late_class):
    """Runs last on late_class (it changes it). The instructor has graded a written answer by
    hand; then both students hand in again, late (`nbgrader collect --update`): re-running the
    kit grades them again (their times changed) and, as nbgrader's AssignLatePenalties does, takes
    the penalty on the notebook's whole score, hand grade included."""
    with gradebook_of(late_class) as gradebook:
        gradebook.find_grade("question-1", "batchnorm", "batchnorm", "late").manual_score = 1.0
        gradebook.db.commit()
    (late_class / "submitted" / "late" / "batchnorm" / "timestamp.txt").write_text("2024-03-01 15:00:00.000000 UTC")
    (late_class / "submitted" / "ontime" / "batchnorm" / "timestamp.txt").write_text("2024-03-01 14:00:00.000000 UTC")
    rows = autograde(Course(late_class), workers=2, students={"late", "ontime"}, progress=False)
    assert [(r.student, r.score) for r in rows] == [("late", 10), ("ontime", 10)]
    with gradebook_of(late_class) as gradebook:
        late = gradebook.find_submission_notebook("batchnorm", "batchnorm", "late")
        assert late.score == 11 and late.late_submission_penalty == 11
        assert gradebook.find_submission("batchnorm", "late").timestamp == datetime.datetime(2024, 3, 1, 15)
        assert gradebook.find_submission_notebook("batchnorm", "batchnorm", "ontime").late_submission_penalty == 10
    grades = exported(late_class)
    assert (grades["late"]["raw_score"], grades["late"]["score"]) == ("11.0", "0.0")
    assert (grades["ontime"]["late_submission_penalty"], grades["ontime"]["score"]) == ("10.0", "0.0")


# ---- the exchange round trip, in a git clone ---------------------------------------------------

def git(*args, cwd=None):
    return run(["git", *args], cwd=cwd or COURSE, env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}).stdout


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    """The course from release to export, every step an nbgrader or make command, in a clone of
    this checkout. The exchange is the clone's own exchange/ (set in the instructor's Jupyter
    configuration, as a course would in /etc/jupyter), which git must ignore. Students run the
    student commands in folders of their own, with their own HOME (nbgrader's submission cache)."""
    root = tmp_path_factory.mktemp("round-trip")
    course = root / "course"
    git("clone", "--quiet", str(COURSE), str(course))
    # This checkout's .gitignore and Makefile are what is tested: committed in the throwaway clone.
    for name in (".gitignore", "Makefile"):
        (course / name).write_bytes((COURSE / name).read_bytes())
    git("-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "--quiet", "--allow-empty",
        "-am", "the working tree's .gitignore and Makefile", cwd=course)
    (course / ".venv").symlink_to(sys.prefix)  # this checkout's venv (ignored by .gitignore, link or not)
    exchange = course / "exchange"
    (root / "jupyter").mkdir()
    (root / "jupyter" / "nbgrader_config.py").write_text(f"c.Exchange.root = {str(exchange)!r}\n")
    instructor = hermetic_env(root / "instructor", JUPYTER_CONFIG_DIR=str(root / "jupyter"))
    nbgrader = [str(Path(sys.prefix) / "bin" / "nbgrader")]
    steps = {}

    def step(name, command, cwd=course, env=instructor, check=True):
        steps[name] = run(command, cwd=cwd, env=env, check=check)

    # `-o .venv/.installed`: the clone's requirements.txt is newer than this venv's stamp; never
    # let make reinstall into the checkout's venv.
    step("exchange", ["make", "--no-print-directory", "-o", ".venv/.installed", "exchange"])
    step("release", nbgrader + ["release_assignment", "batchnorm"])
    for student, mutant in (("alice", None), ("bob", BIASED)):
        home = root / student
        home.mkdir()
        student_env = hermetic_env(home)
        flags = [f"--course={COURSE_ID}", f"--Exchange.root={exchange}"]
        step(f"fetch {student}", nbgrader + ["fetch_assignment", "batchnorm", *flags], cwd=home, env=student_env)
        complete(home / "batchnorm" / "batchnorm.ipynb", mutant, answered=3)
        # Everyone here is root: say who submits (on a JupyterHub it is the user's name).
        step(f"submit {student}", nbgrader + ["submit", "batchnorm", *flags, f"--student={student}"],
             cwd=home, env=student_env)
    step("collect", nbgrader + ["collect", "batchnorm"])
    step("autograde", [str(Path(sys.prefix) / "bin" / "gradekit"), "autograde", "--workers", "2"])
    step("generate_feedback", nbgrader + ["generate_feedback", "batchnorm"])
    step("export", nbgrader + ["export"])
    step("release_feedback", nbgrader + ["release_feedback", "batchnorm"], check=False)
    if steps["release_feedback"].returncode == 0:
        step("fetch_feedback", nbgrader + ["fetch_feedback", "batchnorm", f"--course={COURSE_ID}",
                                           f"--Exchange.root={exchange}", "--student=alice"],
             cwd=root / "alice", env=hermetic_env(root / "alice"), check=False)
    return course, root, steps


def test_make_exchange_sets_up_the_exchange_nbgrader_is_configured_with(round_trip):
    course, _, steps = round_trip
    mode = (course / "exchange").stat().st_mode
    assert stat.S_IMODE(mode) == 0o1777, oct(mode)  # everyone writes; no one removes another's files
    assert f"the exchange is {course / 'exchange'}" in steps["exchange"].stdout
    assert (course / "exchange" / COURSE_ID / "inbound").is_dir()  # release_assignment made the course's folders


def test_the_round_trip_grades_what_students_submitted(round_trip):
    course, _, steps = round_trip
    assert "2 submissions: 2 ok" in steps["autograde"].stdout
    with gradebook_of(course) as gradebook:
        for student, score in (("alice", 10), ("bob", 7)):
            submission = gradebook.find_submission("batchnorm", student)
            stamp = (course / "submitted" / student / "batchnorm" / "timestamp.txt").read_text()
            assert submission.code_score == score
            assert submission.timestamp == datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f %Z")
    grades = {row["student_id"]: row for row in csv.DictReader((course / "grades.csv").open())}
    assert {s: (row["raw_score"], row["max_score"]) for s, row in grades.items()} == {
        "alice": ("10.0", "16.0"), "bob": ("7.0", "16.0")}
    assert all(row["timestamp"] for row in grades.values())


def test_kit_and_nbgrader_feedback_tell_one_score_story(round_trip):
    """nbgrader's page counts everything (the written answers at 0 until graded by hand); the
    kit's counts the automatic checks and says so, with the total they add up to."""
    course, _, _ = round_trip
    for student, score in (("alice", 10), ("bob", 7)):
        kit = words((course / "autograded" / student / "batchnorm" / "feedback.html").read_text())
        ours = (course / "feedback" / student / "batchnorm" / "batchnorm.html").read_text()
        assert f"(Score: {score}.0 / 16.0)" in ours and "Written response" in ours and "(Score: 0.0 / 1.0)" in ours
        assert f"Automatic checks: <strong>{score} / 10</strong>" in kit
        assert f"worth 16 points in all: these {score} plus what your answers earn" in kit and "graded by hand" in kit
        assert "late-submission penalty" in kit
        for page in (kit, ours):
            assert "0 / 0" not in page and "0.0 / 0.0" not in page
    assert "Variance computation: FAIL" in (course / "feedback" / "bob" / "batchnorm" / "batchnorm.html").read_text()


def test_feedback_reaches_students_through_the_exchange(round_trip):
    _, root, steps = round_trip
    assert steps["release_feedback"].returncode == 0, steps["release_feedback"].stderr[-500:]
    assert steps["fetch_feedback"].returncode == 0, steps["fetch_feedback"].stderr[-500:]
    assert list((root / "alice" / "batchnorm" / "feedback").glob("*/batchnorm.html"))


def test_the_course_steps_leave_git_status_clean(round_trip):
    course, _, _ = round_trip
    assert git("status", "--porcelain", "--untracked-files=all", cwd=course) == ""
    ignored = {line[3:] for line in git("status", "--porcelain", "--ignored", cwd=course).splitlines()
               if line.startswith("!! ")}
    # what the steps made, so the clean status above is not vacuous
    assert {"exchange/", "submitted/", "feedback/", "grades.csv", "gradebook.db", ".venv"} <= ignored
    assert {"autograded/alice/", "autograded/grades.csv", "autograded/report.html"} <= ignored


# ---- one score story: the kit's pages ----------------------------------------------------------

def graded(hidden_points=None, failing=(5, 6), hidden_failing=("gradients",), status="ok", message=""):
    checks = ASSIGNMENT.scored_checks(hidden_points)
    verdicts = [CheckResult(c, not (c.number in failing if not c.hidden else c.name in hidden_failing),
                            "" if c.hidden or c.number not in failing else "fc: _tmp_var differs")
                for c in checks]
    return Result("student", "batchnorm", status, message, verdicts)


def test_hidden_checks_without_points_show_no_points():
    page = words(graded().feedback_html(questions=ASSIGNMENT.questions))
    assert "0 / 0" not in page
    assert page.count("<th class=\"points\">") == 1  # the core checks' table only
    assert "they carry no points this time" in page and "Gradients" in page
    assert "worth 16 points in all: these 8 plus what your answers earn" in page


def test_hidden_checks_with_points_show_them_and_only_them():
    page = words(graded({"gradients": 1, "registered_parameters": 2}).feedback_html(questions=ASSIGNMENT.questions))
    assert "0 / 0" not in page and page.count("<th class=\"points\">") == 2
    assert "0 / 1" in page and "2 / 2" in page and "none" in page  # gradients failed; unscored ones say so
    assert "Automatic checks: <strong>10 / 13</strong>" in page and "1 of 2 scored hidden checks" in page
    assert "worth 19 points in all" in page


def test_a_notebook_whose_code_did_not_run_gets_one_clear_message():
    checks = ASSIGNMENT.scored_checks()
    reason = "the notebook does not define BatchNorm (cell 4: SyntaxError: expected ':' (line 32))"
    result = Result("student", "batchnorm", "not-defined", reason,
                    [CheckResult(c, False, f"not reached: {reason}") for c in checks])
    page = result.feedback_html(questions=ASSIGNMENT.questions)
    assert page.count("cell 4: SyntaxError") == 1 and page.count('class="note"') == 1
    assert "No check could look at your code" in page and "<table" not in page


def test_a_grader_failure_does_not_send_the_student_to_fix_their_code():
    result = Result.failed("student", "batchnorm", "sandbox-error",
                           "the sandbox stopped answering while grading (not your code's fault): re-run",
                           ASSIGNMENT.scored_checks())
    page = words(result.feedback_html(questions=ASSIGNMENT.questions))
    assert "the grader failed, not your code" in page and "Fix it" not in page and "<table" not in page


def test_report_links_only_feedback_that_exists_and_says_what_its_scores_count(tmp_path):
    checks = ASSIGNMENT.scored_checks()
    rows = [graded(), Result.failed("nobody", "batchnorm", "missing", "no batchnorm.ipynb in the submission", checks)]
    rows[0].student = "somebody"
    report.write(rows, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "somebody/batchnorm/feedback.html" in page and "nobody/batchnorm/feedback.html" not in page
    assert "late penalties" in page and "nbgrader export" in page


# ---- Gradescope --------------------------------------------------------------------------------

def fake(path, body):
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def fake_python(folder, name, version):
    """A Python that says it is `version`: it runs `-c` code with sys.version_info set to it, makes
    a venv whose pip and gradekit only log, and logs the rest."""
    major, minor = version
    fake(folder / name, f"""echo "{name} $*" >> "$LOG"
case "$1" in
  -c) exec {sys.executable} -c "import sys; sys.version_info = ({major}, {minor}, 0, 'final', 0); exec(sys.argv[1])" "$2" ;;
  --version) echo "Python {major}.{minor}.0" ;;
  -m) /bin/mkdir -p "$3/bin"
      printf '#!/bin/bash\\necho "pip $*" >> "$LOG"\\n' > "$3/bin/pip"
      printf '#!/bin/bash\\necho "gradekit $*" >> "$LOG"\\nexit $SANDBOX_EXIT\\n' > "$3/bin/gradekit"
      /bin/chmod +x "$3/bin/pip" "$3/bin/gradekit" ;;
esac
""")


def image(tmp_path, python3=None, apt_python311=True):
    """A fake Ubuntu image: `python3` at that version (or none), an apt-get that logs and installs
    python3.11 (if `apt_python311`) or python3 (3.12) from a fake archive, a make that logs.
    Nothing else is on PATH: no real apt-get or interpreter is ever run by setup.sh here."""
    bin_dir, archive = tmp_path / "bin", tmp_path / "archive"
    bin_dir.mkdir()
    archive.mkdir()
    if python3:
        fake_python(bin_dir, "python3", python3)
    fake_python(archive, "python3.11", (3, 11))
    fake_python(archive, "python3", (3, 12))
    fake(bin_dir / "apt-get", f"""echo "apt-get $*" >> "$LOG"
case "$*" in
  *python3.11*) {'/bin/cp ' + str(archive / 'python3.11') + ' ' + str(bin_dir) if apt_python311 else 'exit 100'} ;;
  *" python3") /bin/cp {archive / 'python3'} {bin_dir} ;;
esac
""")
    fake(bin_dir / "make", 'echo "make $*" >> "$LOG"\n')
    (tmp_path / "autograder" / "source").mkdir(parents=True)
    return {"PATH": str(bin_dir), "LOG": str(tmp_path / "log"), "AUTOGRADER_ROOT": str(tmp_path / "autograder")}


def setup_sh(tmp_path, env, sandbox_exit=0):
    (tmp_path / "setup.sh").write_text(gradescope.SETUP)
    done = subprocess.run(["/bin/bash", str(tmp_path / "setup.sh")], env={**env, "SANDBOX_EXIT": str(sandbox_exit)},
                          capture_output=True, text=True)
    log = (tmp_path / "log").read_text().splitlines() if (tmp_path / "log").exists() else []
    return done, [line for line in log if " -c " not in line]  # the version checks aside


@pytest.mark.parametrize("version, chosen", [((3, 12), "python3"), ((3, 11), "python3"), ((3, 13), "python3"),
                                             ((3, 10), "python3.11"), ((3, 6), "python3.11"), (None, "python3.11")])
def test_setup_chooses_the_image_python_when_it_is_recent_enough(tmp_path, version, chosen):
    env = image(tmp_path, python3=version)
    done = subprocess.run(["/bin/bash", "-c", gradescope.CHOOSE_PYTHON + "choose_python"], env=env,
                          capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, chosen + "\n"), done.stderr


def test_setup_on_ubuntu_24_04_uses_python_3_12_and_ends_with_the_sandbox_test(tmp_path):
    done, log = setup_sh(tmp_path, image(tmp_path, python3=(3, 12)))
    assert done.returncode == 0, done.stderr
    assert log == ["apt-get update -q", "apt-get install -y -q bubblewrap make", "apt-get install -y -q python3-venv",
                   "python3 --version", "python3 -m venv .venv",
                   "pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu",
                   "make install PYTHON=python3", "gradekit sandbox"]


def test_setup_on_ubuntu_22_04_installs_python_3_11(tmp_path):
    done, log = setup_sh(tmp_path, image(tmp_path, python3=(3, 10)))
    assert done.returncode == 0, done.stderr
    assert "apt-get install -y -q python3.11 python3.11-venv" in log and "python3.11 -m venv .venv" in log
    assert "make install PYTHON=python3.11" in log and log[-1] == "gradekit sandbox"
    assert "the kit runs on Python 3.11.0 (python3.11)" in done.stdout


def test_setup_without_a_usable_python_says_which_images_work(tmp_path):
    done, log = setup_sh(tmp_path, image(tmp_path, python3=(3, 6), apt_python311=False))
    assert done.returncode == 1 and "choose an Ubuntu 22.04 or 24.04 base image" in done.stderr
    assert not any("venv" in line and "-m" in line for line in log)


def test_a_sandbox_that_cannot_start_fails_the_image_build(tmp_path):
    done, log = setup_sh(tmp_path, image(tmp_path, python3=(3, 12)), sandbox_exit=2)
    assert done.returncode != 0 and log[-1] == "gradekit sandbox"


def test_the_bundle_grades_only_in_the_sandbox_and_refuses_in_one_line_where_it_cannot_start(course, tmp_path):
    bundle = gradescope.build(course, ASSIGNMENT, out=tmp_path / "autograder.zip")
    config = tmp_path / "config"
    with zipfile.ZipFile(bundle) as archive:
        archive.extract("grader_config.py", config)
        archive.extract("nbgrader_config.py", config)
        script = archive.read("run_autograder").decode()
    assert Course(config).sandbox.mode == "bwrap"  # weak mode only where grader_config.py opts in
    # A container where bubblewrap cannot make namespaces (as Gradescope's may be):
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    fake(fake_bin / "bwrap", 'echo "bwrap: No permissions to create a new namespace" >&2\nexit 1\n')
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "source").symlink_to(COURSE)  # stands for the unpacked bundle after setup.sh
    source = COURSE / "source" / "batchnorm" / "batchnorm.ipynb"
    (root / "submission" / "batchnorm.ipynb").write_bytes(source.read_bytes())
    (tmp_path / "run_autograder").write_text(script)
    done = subprocess.run(["bash", str(tmp_path / "run_autograder")], capture_output=True, text=True,
                          env={"AUTOGRADER_ROOT": str(root), "PATH": f"{fake_bin}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0 and "tests" not in results
    assert results["output"].startswith("The autograder could not grade this submission: the grading sandbox "
                                        "cannot start: bubblewrap cannot create namespaces here")
    assert "\n" not in results["output"] and "c.Sandbox.mode = 'none'" in results["output"]
    assert "gradekit: error: the grading sandbox cannot start" in done.stdout  # the instructor's log


def test_a_bundle_packs_the_kit_from_disk_without_caches(course):
    """Every assignment's files go in, committed or not (a bundle without its checks could not
    grade); compiled caches stay out."""
    files = set(gradescope.bundle_files(course))
    assert {"gradekit/assignments/batchnorm/checks.py", "gradekit/assignments/batchnorm/hidden.py",
            "gradekit/run/server.py", "grader_config.py"} <= files
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in files)


def test_run_autograder_tells_the_student_why_a_notebook_cannot_be_read(course, tmp_path):
    bundle = gradescope.build(course, ASSIGNMENT, out=tmp_path / "autograder.zip")
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "source").symlink_to(COURSE)
    (root / "submission" / "batchnorm.ipynb").write_text('{"cells": [')
    with zipfile.ZipFile(bundle) as archive:
        (tmp_path / "run_autograder").write_bytes(archive.read("run_autograder"))
    done = subprocess.run(["bash", str(tmp_path / "run_autograder")], capture_output=True, text=True,
                          env={"AUTOGRADER_ROOT": str(root), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    output = json.loads((root / "results" / "results.json").read_text())["output"]
    assert "malformed JSON" in output and output.startswith("The autograder could not grade this submission: ")


# Gradescope's documented results.json fields (gradescope-autograders.readthedocs.io, "Autograder
# Specifications"); visibility: hidden, after_due_date, after_published or visible.
TOP_FIELDS = {"score", "execution_time", "output", "output_format", "test_output_format", "test_name_format",
              "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard"}
TEST_FIELDS = {"score", "max_score", "status", "name", "name_format", "number", "output", "output_format", "tags",
               "visibility", "extra_data"}
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def test_results_json_uses_gradescopes_documented_fields():
    results = graded().gradescope()
    assert set(results) <= TOP_FIELDS and {results["visibility"], results["stdout_visibility"]} <= VISIBILITY
    for test in results["tests"]:
        assert set(test) <= TEST_FIELDS and test["visibility"] in VISIBILITY and test["status"] in ("passed", "failed")


def test_results_json_shows_no_points_for_hidden_checks_without_points():
    """Gradescope shows a test's points as "0.0 / 0.0" when both are 0; its spec lets a test omit them."""
    tests = graded().gradescope()["tests"]
    assert [t for t in tests if t["name"].startswith("hidden")]
    for test in tests:
        assert ("score" in test) == (not test["name"].startswith("hidden")), test
    worth = graded(hidden_points={"gradients": 2}).gradescope()["tests"]
    gradients = next(t for t in worth if t["name"] == "hidden: gradients")
    assert (gradients["score"], gradients["max_score"]) == (0, 2.0)
