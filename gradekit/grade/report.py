"""The class report: a summary table, a score histogram and per-check pass rates (PNG and HTML)."""
import base64
import html
from collections import Counter

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from gradekit.grade.judge import NOT_RUN, STATUSES  # noqa: E402
from gradekit.store import write_atomically  # noqa: E402


def ran(results):
    """The submissions whose code ran: the ones pass rates and the histogram are about."""
    return [r for r in results if r.checks and r.status not in NOT_RUN]


def pass_rates(results, checks):
    graded = ran(results)
    return {c.key: (sum(v.passed for r in graded for v in r.checks if v.check.key == c.key) / len(graded)
                    if graded else 0.0) for c in checks}


def plot(results, checks, path):
    ten = [c for c in checks if not c.is_extra]
    rates = pass_rates(results, checks)
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    scores = [r.passed_ten for r in ran(results)]
    left.hist(scores, bins=[n - 0.5 for n in range(len(ten) + 2)], color="#3b6ea8", edgecolor="white")
    left.set(title=f"Original checks passed ({len(scores)} graded)", xlabel="checks passed", ylabel="students",
             xticks=range(len(ten) + 1))
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    labels = [c.label for c in checks]
    right.barh(labels[::-1], [100 * rates[c.key] for c in checks][::-1],
               color=["#a8743b" if c.is_extra else "#3b6ea8" for c in checks][::-1])
    right.set(title="Pass rate per check", xlabel="% of graded submissions", xlim=(0, 100))
    right.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    figure.savefig(path.with_suffix(".tmp.png"), dpi=110)
    plt.close(figure)
    path.with_suffix(".tmp.png").replace(path)


def write(results, checks, out_dir):
    png = out_dir / "report.png"
    plot(results, checks, png)
    rates = pass_rates(results, checks)
    statuses = Counter(r.status for r in results)
    graded = ran(results)
    mean = sum(r.score for r in graded) / len(graded) if graded else 0
    status_rows = "".join(f"<tr><td>{html.escape(s)}</td><td>{n}</td><td>{html.escape(STATUSES.get(s, ''))}</td></tr>"
                          for s, n in sorted(statuses.items()))
    rate_rows = "".join(f"<tr><td>{html.escape(c.key)}</td><td>{html.escape(c.name)}</td><td>{100 * rates[c.key]:.0f}%</td></tr>"
                        for c in checks)
    attention = "".join(f"<tr><td>{html.escape(r.student)}</td><td>{html.escape(r.assignment)}</td>"
                        f"<td>{html.escape(r.status)}</td><td>{html.escape(r.message)}</td></tr>"
                        for r in results if r.status != "ok")
    image = base64.b64encode(png.read_bytes()).decode()
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Class report</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}} td,th{{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left}}</style>
</head><body><h1>Class report</h1>
<p>{len(results)} submissions, {len(graded)} graded, mean score {mean:.2f}.</p>
<img alt="score histogram and pass rates" src="data:image/png;base64,{image}" style="max-width:100%">
<h2>Status</h2><table><tr><th>status</th><th>rows</th><th>meaning</th></tr>{status_rows}</table>
<h2>Needs your attention</h2><table><tr><th>student</th><th>assignment</th><th>status</th><th>message</th></tr>{attention or '<tr><td colspan=4>nothing</td></tr>'}</table>
<h2>Pass rate per check</h2><table><tr><th>column</th><th>check</th><th>pass rate</th></tr>{rate_rows}</table>
</body></html>
"""
    write_atomically(out_dir / "report.html", page)


def summary_table(results):
    """Plain-text summary for the terminal."""
    statuses = Counter(r.status for r in results)
    lines = [f"{len(results)} submissions: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))]
    for r in results:
        if r.status != "ok":
            lines.append(f"  {r.student}/{r.assignment}: {r.status}: {r.message}")
    return "\n".join(lines)
