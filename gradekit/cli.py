"""The `gradekit` command: one subcommand per thing an instructor does."""
import argparse
import gc
import os
import sys
from pathlib import Path

from gradekit.errors import KitError, SandboxError

# torch, nbgrader and the rest are imported by the commands that need them, so that `check` and
# `autograde` can start their sandboxes first (sandbox.boot_ahead).


def _assignments(args):
    from gradekit import contract
    return [contract.get(name) for name in (args.assignments or contract.names())]


def _course(args):
    from gradekit.course import Course
    return Course(args.course)


def cmd_source(args):
    from gradekit.build import source
    course = _course(args)
    for assignment in _assignments(args):
        print(f"wrote {source.write(course, assignment).relative_to(course.root)}")


def cmd_release(args):
    from gradekit.build.release import release
    course = _course(args)
    for assignment in _assignments(args):
        print(f"released {release(course, assignment).relative_to(course.root)}")


def _assignment_of(path, name):
    from gradekit import contract
    if name:
        return contract.get(name)
    stem = Path(path).name.removesuffix(".ipynb").removesuffix(".py")
    if stem in contract.names():
        return contract.get(stem)
    raise KitError(f"{path}: which assignment is this? Say --assignment NAME (known: {', '.join(contract.names())})")


def print_result(result):
    """What a student would see: the original summary, why each check failed, the hidden checks."""
    from gradekit.selfcheck import explain, summary
    core = result.core
    print(summary([r.check.name for r in core], [r.passed for r in core]))
    if result.code_did_not_run:
        print(f"\nNo check could run: {result.message}")
    else:
        failures = explain([r.check.name for r in core], [r.check.hint for r in core],
                           [(r.passed, r.message) for r in core])
        if failures:
            print("\nWhat failed, and what to try:\n" + failures)
        if result.hidden:
            print(f"\nHidden checks: {sum(r.passed for r in result.hidden)}/{len(result.hidden)} passed")
            for r in result.hidden:
                print(f"  {'Pass  ' if r.passed else '*FAIL*'} {r.check.name}" + ("" if r.passed else f": {r.message}"))
    if result.status != "ok" or result.message:
        print(f"\nstatus: {result.status}" + (f": {result.message}" if result.message else ""))


def cmd_check(args):
    """Grade one notebook or .py file in the sandbox and print what the student would see."""
    import json

    from gradekit.grade.sandbox import boot_ahead
    with boot_ahead(1) as booted:
        from gradekit.grade.autograde import grade_file
        from gradekit.grade.outputs import write_atomically
        course = _course(args)
        assignment = _assignment_of(args.path, args.assignment)
        result = grade_file(course, assignment, args.path, sandbox=booted[0] if booted else None)
    print_result(result)
    if args.results:
        write_atomically(args.results, json.dumps(result.gradescope(), indent=2))
    return 0 if result.status == "ok" and all(r.passed for r in result.checks) else 1


def cmd_solution(args):
    """Every assignment's reference solution and source notebook through all its checks."""
    from gradekit.grade.autograde import grade_file
    from gradekit.grade.sandbox import Sandbox
    course = _course(args)
    failed = 0
    with Sandbox(course.sandbox) as sandbox:  # one box: each file still gets a fresh world in it
        for assignment in _assignments(args):
            for path in (course.solution(assignment), course.source(assignment)):
                print(f"\n== {assignment.name}: {path.relative_to(course.root)}")
                result = grade_file(course, assignment, path, sandbox=sandbox)
                print_result(result)
                failed += result.status != "ok" or not all(r.passed for r in result.checks)
    return 1 if failed else 0


def cmd_autograde(args):
    """Grade every submission under submitted/; exit 1 when a row needs the instructor's attention."""
    from gradekit.grade.sandbox import boot_ahead, start_all
    with boot_ahead(args.workers or os.cpu_count() or 1) as booted:
        import torch  # noqa: F401 (the largest of the grader's imports: the other boxes boot beside the rest)
        start_all(booted)
        from gradekit.grade.autograde import autograde, needs_attention
        from gradekit.grade.report import summary_table
        course = _course(args)
        timeline = {}
        results = autograde(course, workers=args.workers, students=set(args.student or ()), force=args.force,
                            booted=booted, timeline=timeline)
    if args.timeline:  # for `make bench`: when each phase ended, and the peak memory
        import json
        import resource
        from gradekit.grade.outputs import write_atomically
        # The grader's own peak, and what each worker held of its own (its copy-on-write pages)
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                    + sum(timeline.pop("worker_bytes", ())) / (1 << 20))
        write_atomically(args.timeline, json.dumps({"timeline": timeline, "peak_mib": peak_mib}))
    if not results:
        raise KitError(f"nothing to grade: no submissions under {course.submitted}"
                       + (f" for {', '.join(args.student)}" if args.student else ""))
    print(summary_table(results))
    print(f"wrote {course.autograded}/grades.csv, report.html and one folder per submission")
    return 1 if needs_attention(results) else 0


def cmd_gradescope(args):
    from gradekit import gradescope
    course = _course(args)
    for assignment in _assignments(args):
        print(f"wrote {gradescope.build(course, assignment)}: upload it as {assignment.name}'s Gradescope autograder")


def cmd_sandbox(args):
    """Start a sandbox and run a submission's process in it: says whether grading can run here."""
    from gradekit.grade.remote import Namespace
    from gradekit.grade.sandbox import WEAK_MODE, Sandbox
    course = _course(args)
    with Sandbox(course.sandbox) as sandbox:
        session = sandbox.open()
        session.request("cells", cells=[(1, "import torch\nanswer = int(torch.ones(2).sum())")], names=[])
        answer = Namespace(session).answer
        sandbox.finish(session)
    if answer != 2:
        raise SandboxError("the sandbox started but a submission's process did not answer correctly")
    print(f"warning: {WEAK_MODE}" if course.sandbox.mode == "none" else
          "the sandbox works: bubblewrap, a fresh world per submission", file=sys.stderr)
    return 0


def cmd_new(args):
    from gradekit import scaffold
    for path in scaffold.new(_course(args), args.name):
        print(f"created {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gradekit", description=__doc__)
    parser.add_argument("--course", default=".", help="course directory (holds grader_config.py)")
    sub = parser.add_subparsers(dest="command", required=True)

    for name, run, text in (("source", cmd_source, "build the instructor notebooks from solutions/"),
                            ("release", cmd_release, "build the source, then the student release with nbgrader"),
                            ("solution", cmd_solution, "run each reference solution through all its checks"),
                            ("gradescope", cmd_gradescope, "build Gradescope autograder bundles")):
        p = sub.add_parser(name, help=text)
        p.add_argument("assignments", nargs="*", help="default: every assignment")
        p.set_defaults(run=run)

    p = sub.add_parser("check", help="grade one notebook (or .py) in the sandbox and print the summary")
    p.add_argument("path")
    p.add_argument("--assignment", help="default: the file's name")
    p.add_argument("--results", metavar="JSON", help="also write Gradescope's results.json there")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("autograde", help="grade every submission under submitted/ (resumable)")
    p.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: grader_config.py)")
    p.add_argument("--student", action="append", metavar="ID", help="grade only this student (repeatable)")
    p.add_argument("--force", action="store_true", help="grade again even what has not changed")
    p.add_argument("--timeline", metavar="JSON", help=argparse.SUPPRESS)
    p.set_defaults(run=cmd_autograde)

    p = sub.add_parser("sandbox", help="check that the grading sandbox starts on this machine")
    p.set_defaults(run=cmd_sandbox)

    p = sub.add_parser("new", help="scaffold a new assignment (solution, checks, notebook text)")
    p.add_argument("name")
    p.set_defaults(run=cmd_new)

    args = parser.parse_args(argv)
    if args.run in (cmd_check, cmd_autograde):
        gc.disable()  # while they import: grading turns it back on (autograde._grading_heap)
    from gradekit.grade.submission import SubmissionError
    try:
        return args.run(args) or 0
    except (KitError, SandboxError, SubmissionError) as error:
        print(f"gradekit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gradekit: interrupted", file=sys.stderr)
        return 130
    finally:
        # The process ends next. Python's last collection would walk every object the imports made
        # (a second after `autograde`) only to free memory that goes back to the system anyway.
        gc.freeze()


def command():
    """The `gradekit` command: main(), then the process ends at once. Python's own ending would
    tear down every module and free every object the imports made (torch, nbgrader, the
    batteries): about 0.2 s after the work is done and the files are closed."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    command()
