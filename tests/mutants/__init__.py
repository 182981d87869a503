"""Realistic wrong implementations of each assignment, made from its reference solution by a few
literal edits: what the tests check verdicts against, and what `make bench` builds a class from.
Each assignment's module starts with `SOLUTION, Mutant = mutants_of("NAME")`."""
import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from gradekit.build.source import solution_chunks

SOLUTIONS = Path(__file__).resolve().parents[2] / "solutions"


@dataclass(frozen=True)
class Mutant:
    name: str
    edits: tuple  # (old, new) pairs; each old must occur in the solution
    expected_failures: frozenset | None
    solution = ""  # the reference it edits: set on the class mutants_of() makes (not a field)

    def code(self):
        code = self.solution
        for old, new in self.edits:
            assert old in code, f"{self.name}: {old!r} not in the solution"
            code = code.replace(old, new)
        return code

    def cells(self):
        """[(number, source)]: the code's cells as the grader receives a notebook's."""
        return cells(self.code())


def mutants_of(assignment):
    """(the assignment's reference solution, a Mutant class whose edits apply to it)."""
    solution = (SOLUTIONS / assignment / f"{assignment}.py").read_text()
    return solution, type("Mutant", (Mutant,), {"solution": solution})


def cells(code):
    """A solution file split at its `# %% ID` lines, one notebook cell each: [(number, source)]."""
    return list(enumerate(solution_chunks(code, "mutant").values(), start=1))


def run_cells(cells):
    """The namespace [(number, source)] leave, run in this process as a notebook runs them: a cell
    that raises does not stop the next, and what they print is dropped."""
    namespace = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for number, source in cells:
            try:
                exec(compile(source, f"<cell {number}>", "exec"), namespace)
            except Exception:
                pass
    return namespace
