"""`make bench`: the kit against `nbgrader autograde` on the same generated class, phase by phase.

    make bench                                   # a class of 105, the kit then nbgrader (about 10 minutes)
    make bench BENCH="--size 40 --no-nbgrader"   # the kit alone
    make bench BENCH="--large 2000"              # also 2,000 submissions: linearity, memory, unchanged re-run

The class is the T04 assignment's reference and other correct completions of its skeleton (`--mixed`
adds the realistic wrong ones), each in the source notebook's nbgrader form, so both graders see
exactly the same files, in a course where `nbgrader generate_assignment` has run (untimed), as
`make release` leaves it. Every kit run is `gradekit autograde` itself, timed from its start to its
exit as nbgrader's is (a cold start, the kit's imports, its own peak memory). The floor is the
battery's own compute: every check's probe and judgement run in one process on the reference, with
nothing in between, under the kit's own malloc settings.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COURSE = HERE.parent
sys.path[:0] = [str(HERE), str(COURSE)]

ASSIGNMENT = "batchnorm"


def core_checks():
    """How many checks the original battery has: check_0, check_1, ... in both graders' records."""
    from gradekit.assignments.batchnorm.checks import CHECKS
    return len(CHECKS)


def make_class(target, size, mixed=False):
    """A course in `target` with `size` submissions cycling through the variants, its assignment
    generated (in the gradebook, as nbgrader's autograde needs it)."""
    import nbformat
    from mutants import batchnorm

    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ("grader_config.py", "nbgrader_config.py"):
        shutil.copy(COURSE / name, target / name)
    for folder in ("source", "solutions"):
        shutil.copytree(COURSE / folder, target / folder)
    variants = batchnorm.HONEST + (batchnorm.MUTANTS if mixed else [])
    source = nbformat.read(str(COURSE / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)
    for n in range(size):
        variant = variants[n % len(variants)]
        notebook = nbformat.from_dict(source)
        for cell in notebook.cells:
            if cell.get("id") == "batchnorm-class":
                cell.source = variant.code().split("# %% batchnorm-class\n", 1)[1].strip()
        folder = target / "submitted" / f"student{n:04d}-{variant.name}" / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(notebook, str(folder / f"{ASSIGNMENT}.ipynb"))
    nbgrader(target, "generate_assignment", ASSIGNMENT, "--force")  # as `make release` leaves a course
    return target


def floor(repeats=5):
    """ms per submission of the battery's own compute: probes and judgements in one process."""
    import torch

    from gradekit import contract
    from gradekit.grade.battery import Battery
    from gradekit.run import heap
    from gradekit.selfcheck import Local

    class Shared(Local):
        """Fixtures made once per pass, as the autograder makes them (ns.once)."""

        def __init__(self, namespace):
            super().__init__(namespace)
            self._made = {}

        def once(self, make, *args):
            key = (make, *map(id, args))
            if key not in self._made:
                self._made[key] = make(self, *args)
            return self._made[key]

    # As the grader and every student's process run it: one thread, freed blocks kept for reuse
    # (without, a third of the judgements' time is the kernel zeroing fresh pages).
    heap.keep_freed_memory()
    torch.set_num_threads(1)
    battery = Battery(contract.get(ASSIGNMENT))
    namespace = {"__name__": "__main__"}
    exec(compile((COURSE / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.py").read_text(), "reference", "exec"), namespace)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        ns = Shared(namespace)
        for index, scored in enumerate(battery.checks):
            observations = scored.check.probe(ns, battery.inputs[scored.module])
            passed, why = scored.check.verdict(battery.expected[index], observations)
            assert passed, (scored.name, why)
        best = min(best, time.perf_counter() - started)
    return 1000 * best


def kit_run(course):
    """`gradekit autograde` on the class, in a fresh process: its timeline (seconds since the
    process was started, Python's start and the kit's imports included, as nbgrader's time
    includes its own, and its exit), peak memory and verdicts (from grades.csv)."""
    report = course / "timeline.json"
    spawned = time.monotonic()
    done = subprocess.run([str(COURSE / ".venv" / "bin" / "gradekit"), "--course", str(course), "autograde",
                           "--timeline", str(report)], capture_output=True, text=True)
    total = time.monotonic() - spawned
    if done.returncode not in (0, 1):  # 1: some rows need attention, which a mixed class has
        raise SystemExit(f"the kit failed: {done.stderr.strip().splitlines()[-1:]}")
    run = json.loads(report.read_text())
    run["timeline"] = {k: (v - spawned if isinstance(v, float) else [t - spawned for t in v])
                       for k, v in run["timeline"].items()}
    run["total"] = total
    with open(course / "autograded" / "grades.csv", newline="") as table:
        run["verdicts"] = {row["student_id"]: [float(row[f"check_{k}"] or 0) > 0 for k in range(core_checks())]
                           for row in csv.DictReader(table)}
    return run


def phases(run, size):
    t = run["timeline"]
    graded = t["graded"] - t.get("prepared", t["graded"])
    lines = [f"  start-up (Python, the kit's imports)       {t['start']:7.2f} s",
             f"  prepare (read class, batteries, gradebook) {t.get('prepared', 0) - t['start']:7.2f} s",
             f"  sandbox start (first / all ready)          {min(t['ready'], default=0):7.2f} s / "
             f"{max(t['ready'], default=0):.2f} s (overlapped with grading)",
             f"  grading (workers, per-student files)       {graded:7.2f} s  {1000 * graded / size:6.0f} ms per submission",
             f"  outputs (gradebook, grades.csv, report)    {t['written'] - t['graded']:7.2f} s  "
             f"{1000 * (t['written'] - t['graded']) / size:6.0f} ms per submission",
             f"  total, end to end                          {run['total']:7.2f} s  {1000 * run['total'] / size:6.0f} ms "
             f"per submission, grader peak {run['peak_mib']:.0f} MiB"]
    return "\n".join(lines)


def nbgrader(course, *args):
    from gradekit.build.release import nbgrader_command, nbgrader_env
    done = subprocess.run(nbgrader_command(*args), cwd=course, capture_output=True, text=True, env=nbgrader_env())
    if done.returncode != 0:
        raise SystemExit(f"nbgrader {args[0]} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def nbgrader_verdicts(course, students):
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {s: [gradebook.find_grade(f"check-{k}", ASSIGNMENT, ASSIGNMENT, s).score == 1
                    for k in range(core_checks())] for s in students}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=105)
    parser.add_argument("--mixed", action="store_true", help="add the realistic wrong solutions to the class")
    parser.add_argument("--no-nbgrader", action="store_true", help="time the kit alone")
    parser.add_argument("--large", type=int, default=0, metavar="N", help="also grade a generated class of N")
    args = parser.parse_args()

    cores, lowest = os.cpu_count(), floor()
    print(f"floor: the battery's own compute, one process, one core: {lowest:.0f} ms per submission "
          f"({lowest / max(cores, 1):.0f} ms per submission over {cores} cores)")
    course = make_class(COURSE / "bench-course", args.size, args.mixed)
    print(f"\nclass of {args.size} submissions in {course.relative_to(COURSE)}/submitted ({cores} cores)")
    kit = kit_run(course)
    print("kit:\n" + phases(kit, args.size))
    again = kit_run(course)
    print(f"  unchanged re-run                           {again['total']:7.2f} s")
    if not args.no_nbgrader:
        started = time.perf_counter()
        nbgrader(course, "autograde", ASSIGNMENT, "--force")
        seconds = time.perf_counter() - started
        theirs = nbgrader_verdicts(course, list(kit["verdicts"]))
        differ = [s for s in kit["verdicts"] if kit["verdicts"][s] != theirs[s]]
        print(f"nbgrader autograde: {seconds:7.2f} s  {1000 * seconds / args.size:6.0f} ms per submission")
        print(f"ratio, end to end: {seconds / kit['total']:.1f}x faster")
        print("verdicts: identical on every submission" if not differ else
              "verdicts differ:\n  " + "\n  ".join(f"{s}: kit {kit['verdicts'][s]} nbgrader {theirs[s]}" for s in differ))
    if args.large:
        large = make_class(COURSE / "bench-course-large", args.large)
        print(f"\nclass of {args.large} submissions")
        run = kit_run(large)
        finished = run["timeline"]["finished"]
        tenth = max(len(finished) // 10, 1)
        early = 1000 * (finished[tenth] - finished[0]) / tenth
        late = 1000 * (finished[-1] - finished[-tenth - 1]) / tenth
        print(phases(run, args.large))
        print(f"  ms per submission, first tenth / last tenth: {early:.0f} / {late:.0f} ({late / early:.2f}x)")
        rerun = kit_run(large)
        print(f"  unchanged re-run: {rerun['total']:.2f} s, peak {rerun['peak_mib']:.0f} MiB")
        shutil.rmtree(large, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
