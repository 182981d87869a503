"""Reading what a student handed in: the code cells of a notebook (or a .py file, as one cell).

Everything here runs in the grader on untrusted files, so every failure is a `SubmissionError`
whose text is the one line to show, and nothing here follows a link, blocks on a FIFO or device,
or reads more than `MAX_BYTES`. Cells are numbered as the notebook shows them (every cell counts,
Markdown too), so "cell 4" is the fourth cell a student sees.
"""
import json
import os
import stat

MAX_BYTES = 32 << 20


class SubmissionError(ValueError):
    """A submission that cannot be graded; str() is the one line to show, `status` its row's status."""

    def __init__(self, status, message):
        from gradekit.run.wire import clean_text  # imports torch: not before the CLI has started its sandboxes
        super().__init__(clean_text(message, 500))
        self.status = status


def read_bytes(path, limit=MAX_BYTES):
    """The file's bytes, read without following a final symlink or blocking on a special file."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SubmissionError("missing", f"{name}: no such file") from None
    except OSError as error:
        if os.path.islink(name):
            raise SubmissionError("not-a-notebook", f"{name}: is a symbolic link, not a notebook") from None
        raise SubmissionError("missing", f"{name}: cannot be read: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SubmissionError("not-a-notebook", f"{name}: is a folder, not a notebook")
        if not stat.S_ISREG(info.st_mode):
            raise SubmissionError("not-a-notebook", f"{name}: is not a regular file (a FIFO, socket or device)")
        if info.st_size > limit:
            raise SubmissionError("not-a-notebook", f"{name}: {info.st_size >> 20} MiB is too large for a notebook")
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise SubmissionError("not-a-notebook", f"{name}: too large for a notebook")
            chunks.append(chunk)
    finally:
        os.close(fd)


def code_cells(path, skip=lambda grade_id: False):
    """[(cell number, source)] of the code cells a submission runs, in order. `skip(grade_id)`
    says which nbgrader cells are the kit's own (contract.Assignment.kit_cell)."""
    name = os.fspath(path)
    data = read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SubmissionError("malformed", f"{name}: not a text file (not UTF-8)") from None
    if name.endswith(".py"):
        cells = [(1, text)]
    elif name.endswith(".ipynb"):
        cells = _notebook_cells(name, text, skip)
    else:
        raise SubmissionError("not-a-notebook", f"{name}: not a notebook (expected a .ipynb file)")
    if not any(source.strip() for _, source in cells):
        raise SubmissionError("empty", f"{name}: the notebook has no code")
    return cells


def _notebook_cells(name, text, skip):
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as error:
        raise SubmissionError("malformed", f"{name}: malformed JSON at line {error.lineno}: {error.msg}") from None
    except (ValueError, RecursionError):
        raise SubmissionError("malformed", f"{name}: malformed JSON (nested too deeply)") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise SubmissionError("malformed", f"{name}: not a Jupyter notebook (no list of cells)")
    cells = []
    for number, cell in enumerate(notebook["cells"], start=1):
        if not isinstance(cell, dict):
            raise SubmissionError("malformed", f"{name}: cell {number} is not a notebook cell")
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise SubmissionError("malformed", f"{name}: cell {number} has no readable source")
        if not skip(grade_id(cell)):
            cells.append((number, source))
    return cells


def grade_id(cell):
    """The cell's nbgrader id, or "" where its nbgrader metadata is absent or malformed."""
    metadata = cell.get("metadata")
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    value = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
    return value if isinstance(value, str) else ""
