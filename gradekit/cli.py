"""The `gradekit` command: one subcommand per thing an instructor does."""
import argparse
import importlib
import sys

from gradekit import assignment as assignments
from gradekit.errors import KitError, SandboxError
from gradekit.notebook import SubmissionError, code_cells


def cmd_source(args):
    from gradekit.assign import source
    for name in args.assignments or assignments.names():
        print(f"wrote {source.write(assignments.get(name), args.course)}")


def cmd_release(args):
    from gradekit.assign.release import release
    for name in args.assignments or assignments.names():
        print(f"released {release(assignments.get(name), args.course)}")


def cmd_check(args):
    """Grade one notebook or .py file in the sandbox and print what the student would see."""
    from gradekit.grade.one import Grader

    cells = code_cells(args.path)  # bad input fails here, in one line, before any sandbox starts
    with Grader(args.assignment, args.course) as grader:
        result = grader.grade_cells(args.path, cells)
    module = importlib.import_module(grader.assignment.checks_module)
    print(module.summary([r.passed for r in result.ten]))
    for r in result.ten:
        if not r.passed:
            print(f"  check {r.check.number}: {r.message}")
    if result.extra:
        print(f"\nHidden extra checks: {sum(r.passed for r in result.extra)}/{len(result.extra)} passed")
        for r in result.extra:
            print(f"  {'Pass  ' if r.passed else '*FAIL*'} {r.check.name}" + ("" if r.passed else f": {r.message}"))
    if result.status != "ok" or result.message:
        print(f"\nstatus: {result.status}" + (f": {result.message}" if result.message else ""))
    if args.results:
        from gradekit.grade.outputs import write_gradescope_results
        write_gradescope_results(args.results, result)
    return 0 if result.status == "ok" and all(r.passed for r in result.checks) else 1


def cmd_autograde(args):
    """Grade every submission under submitted/; exit 1 when a row needs the instructor's attention."""
    from gradekit.grade import report
    from gradekit.grade.autograde import autograde, needs_attention, write_outputs

    results = autograde(args.course, workers=args.workers)
    if not results:
        raise KitError(f"nothing to grade: no submissions under {args.course}/submitted/")
    write_outputs(args.course, results)
    print(report.summary_table(results))
    print(f"wrote {args.course}/autograded/grades.csv, report.html, report.png and one folder per student")
    return 1 if needs_attention(results) else 0


def cmd_gradescope(args):
    from gradekit import gradescope
    print(f"wrote {gradescope.build(args.course, args.assignment)}: upload it as the Gradescope autograder")


def cmd_bench(args):
    from gradekit import bench
    return bench.run(args.course, size=args.size)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gradekit", description=__doc__)
    parser.add_argument("--course", default=".", help="course directory (holds grader_config.py)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("source", help="build the instructor notebook(s) from solutions/")
    p.add_argument("assignments", nargs="*")
    p.set_defaults(run=cmd_source)

    p = sub.add_parser("release", help="build the source, then the student release with nbgrader")
    p.add_argument("assignments", nargs="*")
    p.set_defaults(run=cmd_release)

    p = sub.add_parser("check", help="grade one notebook (or .py) in the sandbox and print the summary")
    p.add_argument("path")
    p.add_argument("--assignment", default="batchnorm")
    p.add_argument("--results", metavar="JSON", help="also write Gradescope's results.json there")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("gradescope", help="build the Gradescope autograder bundle (setup.sh, run_autograder)")
    p.add_argument("--assignment", default="batchnorm")
    p.set_defaults(run=cmd_gradescope)

    p = sub.add_parser("autograde", help="grade every submission under submitted/ (resumable)")
    p.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: grader_config.py)")
    p.set_defaults(run=cmd_autograde)

    p = sub.add_parser("bench", help="time the kit against `nbgrader autograde` on a generated class")
    p.add_argument("--size", type=int, default=24, help="submissions in the generated class")
    p.set_defaults(run=cmd_bench)

    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except (KitError, SubmissionError, SandboxError, assignments.UnknownAssignment) as error:
        print(f"gradekit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gradekit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
