"""Inside the sandbox, in a child forked for one submission: run its cells, then the probes.

Cells run with notebook semantics: in order, in one namespace, a cell that raises does not stop
the cells after it, and the class is whatever the notebook defined last. Each probe's
observations go to the grader as a frame as soon as the probe ends, so a crash later on does not
lose them. Nothing here judges: the grader does, in its own process.
"""
import builtins
import io
import struct
import sys

from gradekit import wire

FRAME = struct.Struct("<I")
MAX_FRAME = 512 * 1024 * 1024


def frame(payload):
    data = wire.encode(payload)
    return FRAME.pack(len(data)) + data


class CappedOutput(io.TextIOBase):
    """stdout/stderr for student code: counts what is printed and drops it; nobody reads it."""

    def __init__(self, limit):
        self.limit, self.kept, self.dropped = limit, 0, 0

    def writable(self):
        return True

    def write(self, text):
        size = len(str(text))
        room = max(self.limit - self.kept, 0)
        self.kept += min(size, room)
        self.dropped += max(size - room, 0)
        return size


class NoIPython:
    """What `get_ipython()` returns: magics and shell escapes (`%pip`, `!ls`) do nothing here."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _ipython_to_python(source, transform):
    try:
        return transform(source)
    except Exception:
        return source


def first_line(error):
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


def run_cells(cells, namespace, transform):
    """Execute cells as a notebook would; return one line per cell that failed."""
    errors = []
    for number, source in enumerate(cells, start=1):
        try:
            code = compile(_ipython_to_python(source, transform), f"<cell {number}>", "exec")
        except SyntaxError as error:
            errors.append(f"cell {number}: SyntaxError: {error.msg} (line {error.lineno})")
            continue
        try:
            exec(code, namespace)
        except BaseException as error:  # SystemExit too: a notebook carries on after it
            errors.append(f"cell {number}: {first_line(error)}")
    return errors


def run_submission(cells, class_name, checks, modules, inputs, send, transform):
    """Run a submission's cells and the probes of `checks` [(module, index)], sending frames."""
    namespace = {"__name__": "__main__", "__builtins__": builtins, "get_ipython": NoIPython}
    send({"kind": "cells", "errors": run_cells(cells, namespace, transform)})
    cls = namespace.get(class_name)
    if not isinstance(cls, type):
        send({"kind": "missing", "message": f"the notebook defines no class {class_name}"})
        checks = []
    for module, index in checks:
        probe = modules[module].CHECKS[index][1]
        try:
            observations, error = probe(cls, inputs[module]), None
        except BaseException as exc:
            observations, error = None, f"raised {first_line(exc)}"
        try:
            send({"kind": "check", "module": module, "index": index, "obs": observations, "error": error})
        except Exception as exc:  # the observations do not encode: the check fails, the rest go on
            send({"kind": "check", "module": module, "index": index, "obs": None,
                  "error": f"observations could not be recorded: {first_line(exc)}"})
    out = sys.stdout
    if isinstance(out, CappedOutput) and out.dropped:
        send({"kind": "note", "message": f"printed {out.dropped} characters over the output cap; dropped"})
    send({"kind": "end"})
