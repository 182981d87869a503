"""Per-class and per-student files written from graded results (all written atomically)."""
import csv
import html
import io
import json

from gradekit.store import write_atomically

FIXED_COLUMNS = ["student_id", "assignment"]
TAIL_COLUMNS = ["score", "max_score", "status", "message"]


def write_grades_csv(path, results, checks):
    """One row per student and assignment: points per check, extra-check flags, score, status."""
    ten = [c for c in checks if not c.is_extra]
    extra = [c for c in checks if c.is_extra]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIXED_COLUMNS + [c.key for c in ten] + [c.key for c in extra] + TAIL_COLUMNS)
    max_score = sum(c.points for c in checks)
    for result in results:
        verdict = {r.check.key: r for r in result.checks}
        row = [result.student, result.assignment]
        row += [_number(verdict[c.key].points) if c.key in verdict else 0 for c in ten]
        row += [int(verdict[c.key].passed) if c.key in verdict else 0 for c in extra]
        row += [_number(result.score), _number(max_score), result.status, result.message]
        writer.writerow(row)
    write_atomically(path, out.getvalue())


def _number(value):
    return int(value) if float(value).is_integer() else round(value, 3)


def gradescope_results(result):
    """Gradescope's results.json: the same tests and scores; extra checks shown once published."""
    tests = []
    for r in result.checks:
        tests.append({
            "name": r.check.label,
            "score": r.points, "max_score": r.check.points, "status": "passed" if r.passed else "failed",
            "output": "" if r.passed else f"{r.message}\nHint: {r.check.hint}".strip(),
            "visibility": "after_published" if r.check.is_extra else "visible",
        })
    return {"score": result.score, "output": "" if result.status == "ok" else f"{result.status}: {result.message}",
            "tests": tests}


def write_gradescope_results(path, result):
    write_atomically(path, json.dumps(gradescope_results(result), indent=2))


def feedback_html(result, show_hints=True):
    """What a student reads: each check, pass or fail, and a hint for each failure. No test code."""
    rows = []
    for r in result.checks:
        detail = "" if r.passed else html.escape(r.message) + (
            f"<br><em>Hint: {html.escape(r.check.hint)}</em>" if show_hints and r.check.hint else "")
        verdict = "Pass" if r.passed else "FAIL"
        rows.append(f"<tr class='{verdict.lower()}'><td>{html.escape(r.check.label)}</td><td>{verdict}</td>"
                    f"<td>{r.points:g} / {r.check.points:g}</td><td>{detail}</td></tr>")
    notes = []
    if result.status != "ok":
        notes.append(f"<p class='status'>Your notebook could not be graded completely: {html.escape(result.status)}: "
                     f"{html.escape(result.message)}</p>")
    if result.extra and result.passed_ten < len(result.ten):
        notes.append("<p>The extra checks build on the original ten: fix the failures among the ten first, "
                     "then look at the extra checks again.</p>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Feedback: {html.escape(result.assignment)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}} td,th{{padding:.3em .6em;border-bottom:1px solid #ddd}}
tr.pass td:nth-child(2){{color:#17692b}} tr.fail td:nth-child(2){{color:#b00020;font-weight:bold}} .status{{color:#b00020}}</style>
</head><body><h1>{html.escape(result.assignment)}: {result.score:g} / {result.max_score:g}</h1>
<p>Student: {html.escape(result.student)}. Checks passed: {result.passed_ten}/{len(result.ten)}.</p>{''.join(notes)}
<table><tr><th>Check</th><th>Verdict</th><th>Points</th><th>Why, and what to try</th></tr>
{''.join(rows)}</table></body></html>
"""
