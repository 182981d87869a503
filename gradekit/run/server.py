"""The student's process: run the submission's cells, then answer the grader's operations on
the objects they defined. Nothing here judges, and nothing here knows the checks.

The grader's probes drive the student's objects through proxies (gradekit/grade/remote.py); each
proxy operation is one operation here: get or set an attribute, call something under a given
grad mode, list an iterable, read a value as data. A frame carries a list of them, run in order
until one raises; the grader's tensors ride along as uploads. Answers are data only (see
wire.py): plain values by value, tensors and other objects as handles the grader can use in
later operations. Whatever the submission does inside this process can change a verdict only
through how its objects answer.
"""
import builtins
import io
import sys
import time

import torch

from gradekit.run import wire

MAX_ITEMS = 100_000  # elements of a list, tuple or dict answered by value
MAX_READ_BYTES = 256 << 20


class CappedOutput(io.TextIOBase):
    """stdout/stderr for student code: counts what is printed and drops it; nobody reads it."""

    def __init__(self):
        self.printed = 0

    def writable(self):
        return True

    def write(self, text):
        size = len(str(text))
        self.printed += size
        return size


class NoIPython:
    """What `get_ipython()` returns: magics and shell escapes (`%pip`, `!ls`) do nothing here."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def first_line(error):
    """`ValueError: the message's first line`, whatever the exception's __str__ does."""
    try:
        text = str(error).strip()
    except BaseException:
        text = ""
    name = type(error).__name__
    line = text.splitlines()[0] if text else ""
    return wire.clean_text(f"{name}: {line}" if line else name, 500)


class Server:
    def __init__(self, sock, transform, preloaded=None):
        self.sock = sock
        self.transform = transform  # IPython's cell transformer: magics become plain Python
        self.objects = {}  # handle -> object, kept alive while the grader holds the handle
        self.next_handle = 0
        self.handles = {}  # id(object) -> handle, so one object always has one handle
        self.masters = dict(preloaded or {})  # the grader's uploads, copied afresh for each use
        self.namespace = {"__name__": "__main__", "__builtins__": builtins, "get_ipython": NoIPython}
        self.output = sys.stdout if isinstance(sys.stdout, CappedOutput) else CappedOutput()
        # Bound now, before student code runs: a submission that patches these later changes
        # only what its own objects answer.
        self._send, self._receive = wire.send, wire.receive
        self._clone, self._detach = torch.Tensor.clone, torch.Tensor.detach
        self._cpu_seconds = time.process_time

    def serve(self):
        self._send(self.sock, {"hello": True})
        while True:
            try:
                message = self._receive(self.sock)
            except (wire.Closed, wire.WireError):
                return
            if message is None:
                return
            request, tensors, _ = message
            blobs, answers = [], []
            try:
                for upload in request.get("uploads", ()):
                    self.upload(upload, tensors)
                for handle in request.get("release", ()):
                    self.release(handle)
            except BaseException as error:  # the first operation's error: it needed them
                answers.append({"error": first_line(error)})
            for op in request["ops"][len(answers):]:
                if answers and "ok" not in answers[-1]:
                    answers.append({"skipped": True})  # a probe stops at its first error
                    continue
                mark = len(blobs)
                try:
                    answers.append({"ok": self.run(op, tensors, blobs)})
                except BaseException as error:  # SystemExit too: a notebook carries on after it
                    del blobs[mark:]
                    answers.append({"error": first_line(error)})
            reply = {"answers": answers}
            try:  # the grader's copies' write counts, as the operations left them (op_versions)
                if request.get("versions"):
                    reply["versions"] = [int(self.objects[h]._version) for h in request["versions"]]
            except BaseException:
                pass  # the grader asks with a "versions" operation, and sees its error
            self._send(self.sock, reply, blobs)

    def run(self, request, tensors, blobs):
        """One operation's answer. A recorded one (with "as") keeps its result under the handle the
        grader chose (none: the grader dropped it already), and answers null."""
        op = request["op"]
        value = getattr(self, "op_" + op)(request, tensors, blobs)
        if op not in wire.PIPELINED:
            return value
        if "as" in request:
            if request["as"] is not None:
                self.keep(request["as"], value)
            return None
        return self.answer(value)

    # ---- values in and out ------------------------------------------------------------

    def handle(self, obj):
        key = id(obj)
        if key not in self.handles:
            self.next_handle += 1
            self.handles[key] = self.next_handle
            self.objects[self.next_handle] = obj
        return self.handles[key]

    def refer(self, obj):
        return {"ref": self.handle(obj), "type": wire.clean_text(type(obj).__name__, 100),
                "tensor": isinstance(obj, torch.Tensor)}

    def answer(self, value):
        """A value as the grader gets it: plain data by value, anything else as a handle."""
        return wire.encode(_bounded(value), self.refer, None)

    def arguments(self, value, tensors):
        if type(value) in wire.PLAIN:  # most arguments: a name, a number or one handle
            return value
        if type(value) is dict and "ref" in value:
            return self.objects[value["ref"]]
        return wire.decode(value, tensors, lambda tag: self.objects[tag["ref"]])

    # ---- operations -------------------------------------------------------------------

    def op_cells(self, request, tensors, blobs):
        """Run the submission's cells as a notebook would: in order, in one namespace; a cell
        that raises does not stop the cells after it. One line per cell that failed."""
        errors = []
        names = self.arguments(request["names"], tensors)
        for number, source in self.arguments(request["cells"], tensors):
            try:
                code = compile(self.transform(source), f"<cell {number}>", "exec")
            except SyntaxError as error:
                errors.append(f"cell {number}: SyntaxError: {error.msg} (line {error.lineno})")
                continue
            except BaseException as error:
                errors.append(f"cell {number}: {first_line(error)}")
                continue
            try:
                exec(code, self.namespace)
            except BaseException as error:
                errors.append(f"cell {number}: {first_line(error)}")
        return self.answer({"errors": errors, "defined": [n for n in names if n in self.namespace]})

    def op_printed(self, request, tensors, blobs):
        return self.output.printed

    def op_global(self, request, tensors, blobs):
        try:
            return self.namespace[request["name"]]
        except KeyError:
            raise NameError(f"name {request['name']!r} is not defined") from None

    def op_module(self, request, tensors, blobs):
        """The torch the student's code sees (or one of its submodules)."""
        name = request["name"]
        if name != "torch" and not name.startswith("torch."):
            raise ValueError(f"not a torch module: {name}")
        return sys.modules.get(name) or __import__(name, fromlist=["_"])

    def op_getattr(self, request, tensors, blobs):
        return getattr(self.arguments(request["obj"], tensors), request["name"])

    def op_setattr(self, request, tensors, blobs):
        setattr(self.arguments(request["obj"], tensors), request["name"], self.arguments(request["value"], tensors))

    def op_call(self, request, tensors, blobs):
        function = self.arguments(request["fn"], tensors)
        args = self.arguments(request["args"], tensors)
        kwargs = self.arguments(request["kwargs"], tensors)
        grad, inference = request["grad"]
        mode = torch.inference_mode() if inference else torch.enable_grad() if grad else torch.no_grad()
        with mode:
            return function(*args, **kwargs)

    def op_same(self, request, tensors, blobs):
        """Whether two values are one object: `is`, where the objects live."""
        return self.arguments(request["a"], tensors) is self.arguments(request["b"], tensors)

    def op_list(self, request, tensors, blobs):
        items = []
        for item in self.arguments(request["obj"], tensors):
            items.append(item)
            if len(items) > MAX_ITEMS:
                raise ValueError("too many items to list")
        return self.answer(items)

    def op_len(self, request, tensors, blobs):
        return len(self.arguments(request["obj"], tensors))

    def op_isinstance(self, request, tensors, blobs):
        return isinstance(self.arguments(request["obj"], tensors), self.arguments(request["cls"], tensors))

    def op_cpu_seconds(self, request, tensors, blobs):
        """CPU time this process has used: what a timing probe compares, since unlike the wall
        clock it does not count the time the process waited for a core."""
        return self._cpu_seconds()

    def op_seed(self, request, tensors, blobs):
        torch.manual_seed(request["seed"])

    def upload(self, upload, tensors):
        """A fresh copy of one of the grader's tensors, for the student's code to use, under the
        handle the grader chose for it. Uploads travel with the request that first uses them, so
        they cost no exchange of their own."""
        if "data" in upload:
            self.masters[upload["master"]] = self.arguments(upload["data"], tensors)
        copy = self._clone(self.masters[upload["master"]])
        if upload.get("requires_grad"):
            copy.requires_grad_(True)
        self.keep(upload["handle"], copy)

    def keep(self, handle, obj):
        """Hold `obj` under a handle the grader chose (negative: the grader's own numbering)."""
        if type(handle) is not int or handle >= 0 or handle in self.objects:
            raise ValueError("malformed handle")
        self.objects[handle] = obj
        self.handles.setdefault(id(obj), handle)

    def release(self, handle):
        obj = self.objects.pop(handle, None)
        if self.handles.get(id(obj)) == handle:
            del self.handles[id(obj)]

    def op_versions(self, request, tensors, blobs):
        """How often each tensor has been written in place (its autograd version counter). Every
        frame that lists the handles of the grader's copies gets theirs with its answers too."""
        return [int(t._version) for t in self.arguments(request["objs"], tensors)]

    def op_read(self, request, tensors, blobs):
        """A value as data, now: tensors as their bytes, anything that is not data as its type name."""
        size = 0

        def data(obj):
            nonlocal size
            found = wire.tensor_bytes(obj)
            if found is None:
                kind = f"tensor on {obj.device}" if isinstance(obj, torch.Tensor) else type(obj).__name__
                return {"opaque": wire.clean_text(kind, 100)}
            size += len(found[2])
            if size > MAX_READ_BYTES:
                raise ValueError(f"too much data to read ({size >> 20} MiB)")
            blobs.append(found)
            return {"tensor": str(len(blobs) - 1)}

        return wire.encode(_bounded(self.arguments(request["value"], tensors)), data, blobs)


def _bounded(value, depth=0):
    """The value with long strings cut; answers too large or deep to send by value are refused
    here (the grader would refuse them anyway)."""
    if depth > wire.MAX_DEPTH:
        raise ValueError("value nested too deeply to send")
    if type(value) is str:
        return value[:wire.MAX_TEXT]
    if type(value) in (list, tuple):
        if len(value) > MAX_ITEMS:
            raise ValueError("value too large to send")
        return type(value)(_bounded(item, depth + 1) for item in value)
    if type(value) is dict and all(type(k) is str for k in value):
        if len(value) > MAX_ITEMS:
            raise ValueError("value too large to send")
        return {k[:wire.MAX_TEXT]: _bounded(item, depth + 1) for k, item in value.items()}
    return value
