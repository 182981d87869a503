"""The class report: per assignment, a score histogram and each check's pass rate (report.png),
and a page (report.html) with status counts, who needs attention and every student's score.

Means and pass rates count only submissions whose code ran: a missing or broken notebook is a
row to chase, not a zero that drags the class statistics down.
"""
import base64
from collections import Counter
from io import BytesIO

import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from gradekit.grade.results import STATUSES, number, template  # noqa: E402


def by_assignment(results):
    groups = {}
    for r in results:
        if r.checks:
            groups.setdefault(r.assignment, []).append(r)
    return dict(sorted(groups.items()))


def pass_rates(results):
    """[(check, fraction of the submissions that ran which passed it)] for one assignment's rows."""
    ran = [r for r in results if r.ran]
    rates = []
    for index, verdict in enumerate(results[0].checks):
        rates.append((verdict.check, sum(r.checks[index].passed for r in ran) / len(ran) if ran else 0.0))
    return rates


def plot(groups):
    """PNG bytes: one row per assignment, score histogram on the left, pass rates on the right."""
    figure, axes = plt.subplots(len(groups) or 1, 2, figsize=(12, 4.2 * max(len(groups), 1)), squeeze=False, dpi=100)
    for (name, results), (left, right) in zip(groups.items(), axes):
        ran = [r for r in results if r.ran]
        core = len(results[0].core)
        left.hist([sum(v.passed for v in r.core) for r in ran], bins=[n - 0.5 for n in range(core + 2)],
                  color="#3b6ea8", edgecolor="white")
        left.set(title=f"{name}: core checks passed ({len(ran)} graded)", xlabel="checks passed",
                 ylabel="students", xticks=range(core + 1))
        left.yaxis.set_major_locator(MaxNLocator(integer=True))
        rates = pass_rates(results)
        right.barh([c.label for c, _ in rates][::-1], [100 * rate for _, rate in rates][::-1],
                   color=["#a8743b" if c.hidden else "#3b6ea8" for c, _ in rates][::-1])
        right.set(title=f"{name}: pass rate per check", xlabel="% of graded submissions", xlim=(0, 100))
        right.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    # The canvas draws with the renderer tight_layout measured the text with (its text sizes are
    # cached), and the PNG is encoded from its pixels: the bytes savefig writes, in a third less
    # time (savefig draws again with a renderer of its own).
    figure.canvas.draw()
    buffer = BytesIO()
    matplotlib.image.imsave(buffer, figure.canvas.buffer_rgba(), format="png")
    plt.close(figure)
    return buffer.getvalue()


def write(results, out_dir):
    from gradekit.grade.outputs import write_atomically

    groups = by_assignment(results)
    png = plot(groups)
    write_atomically(out_dir / "report.png", png)
    assignments = []
    for name, rows in groups.items():
        ran = [r for r in rows if r.ran]
        assignments.append({"name": name, "rows": len(rows), "ran": len(ran), "max_score": number(rows[0].max_score),
                            "mean": number(sum(r.score for r in ran) / len(ran)) if ran else None,
                            "rates": pass_rates(rows)})
    page = template("report.html.j2").render(
        results=results, statuses=sorted(Counter(r.status for r in results).items()), meanings=STATUSES,
        assignments=assignments, attention=[r for r in results if r.status != "ok"], number=number,
        image=base64.b64encode(png).decode())
    write_atomically(out_dir / "report.html", page)


def summary_table(results):
    """Plain-text summary for the terminal."""
    statuses = Counter(r.status for r in results)
    lines = [f"{len(results)} submissions: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))]
    for r in results:
        if r.status != "ok":
            lines.append(f"  {r.student}/{r.assignment}: {r.status}: {r.message}")
    return "\n".join(lines)
