"""The grader's hold on a student's process: a session of requests, and proxies for its objects.

Probes (the checks' first halves) are written as plain PyTorch code against a namespace `ns`:

    bn = ns.BatchNorm(x.shape)        # construct the student's class
    bn.moving_mu = mu                 # set an attribute (a grader tensor is uploaded)
    with torch.no_grad():
        bn(x)                         # call it under the grader thread's grad mode
    got = ns.read(bn._tmp_x_hat_test) # the value now, as grader-side data

In the student's own kernel (the self-check) `ns` wraps the real objects (selfcheck.py); here
every step is one request to the student's process, and what comes back is a plain value or a
`Remote` proxy. Probes run in the grader's threads and never execute student code; everything
the answers contain has passed wire.decode's checks and the session's byte budget.

A frame to the student's process carries a list of operations, which it runs in order; one
that raises ends the list there (the rest are skipped, as a probe stops at an error). Outside a
pipelined block every operation is a frame of its own and waits for its answer. Inside
`with ns.pipelined():` attribute reads, calls, names, assignments, `ns.same` and `ns.isinstance`
(wire.PIPELINED) are only recorded: each gives at once a proxy for a handle the grader chose,
whatever its value will be, and the next operation that needs an answer (`ns.read`, len,
iteration) or the end of the block sends them all in one frame. A probe step of ten operations
costs one round trip instead of ten, and the first operation that raised is the error the probe
sees, as one request at a time would have shown.
"""
import contextlib
import time
import uuid
import weakref
from dataclasses import dataclass

import torch

from gradekit.run import wire


class RemoteError(Exception):
    """The student's code raised during an operation (str: "ValueError: ..."): the check fails."""


class Ended(Exception):
    """The student's process is gone, too slow, or broke the protocol: no further operations."""


MAX_BATCH = 256  # operations recorded at most before they are sent


class Preload:
    """A battery's inputs, which every student's process of a box holds from its start: the box
    gets their bytes once (Sandbox.open), and a session's uploads of them carry none (about 4.6
    MB a T04 submission that no longer crosses, is copied three times and parsed). They are the
    grader's own tensors, which each check uploads anyway: nothing a student's code could not
    see during its pass."""

    def __init__(self, tensors):
        self.name = uuid.uuid4().hex  # each battery's own, shared by the workers forked with it
        unique = {id(t): t for t in tensors if wire.tensor_bytes(t) is not None}
        # id(grader tensor) -> (tensor, master key): Session._masters' form
        self.masters = {key: (t, f"{self.name}:{i}") for i, (key, t) in enumerate(unique.items())}

    def blobs(self):
        """The tensors as the control frame carries them (keys "0", "1", ...)."""
        return [wire.tensor_bytes(t) for t, _ in self.masters.values()]


class _Watch(weakref.ref):
    """A weak reference to a proxy that lists the proxy's handle for release once it is gone
    (lighter than weakref.finalize, which a session would make hundreds of times)."""

    def __new__(cls, proxy, handle, released):
        return super().__new__(cls, proxy, _gone)

    def __init__(self, proxy, handle, released):
        super().__init__(proxy, _gone)
        self.handle, self.released = handle, released


def _gone(watch):
    watch.released.append(watch.handle)


def _grad_mode():
    return [torch.is_grad_enabled(), torch.is_inference_mode_enabled()]


class Session:
    """Requests to one student process, with its deadline and its byte budget."""

    def __init__(self, sock, deadline, budget_bytes, preloaded=None):
        self.sock, self.deadline, self.budget = sock, deadline, budget_bytes
        self.ended = None  # why the session ended early, once it has
        self._proxies = {}  # handle -> weak reference to its proxy (_Watch): one proxy per object
        self._released = []  # handles whose proxies are gone, freed with a later request (never rebound)
        # id(grader tensor) -> (tensor, master key): uploaded once per session, unless the
        # student's process holds it from its start (the battery's inputs: Preload)
        self._masters = dict(preloaded.masters) if preloaded else {}
        self._scope = {}  # id(grader tensor) -> (tensor, proxy, version seen): this check's copies
        self._uploads = []  # (upload, bytes or None) not sent yet: they go with the next request
        self._next_handle = 0  # uploads and pipelined results get handles -1, -2, ...: the grader names them
        self._pipelining = 0  # depth of `pipelined()` blocks
        self._batch = []  # operations recorded in a pipelined block, not sent yet
        self._referenced = set()  # handles the recorded operations use
        self.recorded = 0  # operations recorded so far: the next one's number
        self._not_run = []  # [first, end) numbers of operations an error skipped (or that raised)
        self._versions = {}  # handle -> version, of the copies in scope, as the last frame left them

    # ---- requests ---------------------------------------------------------------------

    def request(self, op, **fields):
        """Run one operation, return its answer (a plain value or a proxy). In a pipelined block,
        record it and return a proxy for its result."""
        message = {"op": op}
        for key, value in fields.items():  # names and numbers as they are: most fields are
            message[key] = value if type(value) in wire.PLAIN else wire.encode(value, self._argument, None)
        if self.ended:
            raise Ended(self.ended)
        self.recorded += 1
        if not (self._pipelining and op in wire.PIPELINED):
            self._batch.append(message)
            return self._send()
        proxy = None
        if op != "setattr":
            self._next_handle -= 1
            message["as"] = self._next_handle
            proxy = self._proxy({"ref": self._next_handle})
        self._batch.append(message)
        if len(self._batch) >= MAX_BATCH:
            self._send()
        return proxy

    @contextlib.contextmanager
    def pipelined(self):
        """Record the operations of wire.PIPELINED, and send them together
        (see the module's docstring). An error of the student's code raised in the block wins
        over a local one that followed it, as it would have stopped the probe first."""
        self._pipelining += 1
        try:
            yield
        finally:
            self._pipelining -= 1
            if not self._pipelining and self._batch and not self.ended:
                self._send()

    def _send(self):
        """Send the recorded operations in one frame; the last one's answer (None for a
        pipelined one), or the first error among them."""
        ops, self._batch = self._batch, []
        message, blobs = {"ops": ops}, []
        if self._released:
            # A gone proxy's result made by this frame is not kept at all when nothing recorded
            # uses it (as the result of `bn(batch)` in a training loop). One that an operation of
            # this frame uses is needed until the frame has run: it is released with the next.
            made = {op["as"]: op for op in ops if op.get("as") is not None}
            now, later = [], []
            for handle in self._released:
                if handle in self._referenced:
                    later.append(handle)
                elif handle in made:
                    made[handle]["as"] = None
                else:
                    now.append(handle)
            if now:
                message["release"] = now
            self._released[:] = later  # in place: each proxy's finalizer appends to this list
        self._referenced = set()
        if self._uploads:
            message["uploads"] = []
            for upload, data in self._uploads:
                if data is not None:
                    blobs.append(data)
                    upload = {**upload, "data": {"tensor": str(len(blobs) - 1)}}
                message["uploads"].append(upload)
            self._uploads = []
        # Every frame asks how often this check's copies have been written once its operations
        # have run, so writes() needs no round trip of its own after a probe's last frame.
        watched = [proxy._handle for _, proxy, _ in self._scope.values()]
        if watched:
            message["versions"] = watched
        self._versions = {}
        try:
            wire.send(self.sock, message, blobs)
            answer = wire.receive(self.sock, self.deadline, self.budget)
            if answer is None:
                raise wire.Closed("the student's process ended")
            document, tensors, size = answer
            self.budget -= size
            answers = document.get("answers") if isinstance(document, dict) else None
            if type(answers) is not list or len(answers) != len(ops):
                raise wire.WireError("malformed answer")
            versions = document.get("versions") if watched else None
            if type(versions) is list and len(versions) == len(watched) and all(type(v) is int for v in versions):
                self._versions = dict(zip(watched, versions))  # else writes() asks on its own
            for number, (op, answer) in enumerate(zip(ops, answers), start=self.recorded - len(ops)):
                if not isinstance(answer, dict):
                    raise wire.WireError("malformed answer")
                if "error" in answer:
                    self._not_run.append((number, self.recorded))
                    raise RemoteError(wire.clean_text(answer["error"], 500))
                if "ok" not in answer or ("as" in op and answer["ok"] is not None):
                    raise wire.WireError("malformed answer")
            last = answers[-1]["ok"]
            return None if "as" in ops[-1] else wire.decode(last, tensors, self._proxy, text=wire.clean_text)
        except (wire.Closed, OSError) as error:
            self._end("timeout" if time.monotonic() >= self.deadline else "closed", error)
        except wire.WireError as error:
            self._end("protocol", error)

    def ran(self, first, end):
        """Whether operations [first, end) all ran, or are recorded and not sent yet (they then run
        before anything recorded after them)."""
        return not any(first < stop and start < end for start, stop in self._not_run)

    def _end(self, why, error):
        self.ended = why
        raise Ended(f"{why}: {wire.clean_text(error, 200)}") from None

    def _argument(self, obj):
        """The JSON form of something a probe passes to the student's code."""
        if isinstance(obj, Remote):
            if obj._session is not self:
                raise TypeError("a proxy from another submission")
            self._referenced.add(obj._handle)
            return {"ref": obj._handle}
        if isinstance(obj, torch.Tensor):
            return {"ref": self.put(obj)._handle}
        raise TypeError(f"cannot pass a {type(obj).__name__} to the student's code")

    def _proxy(self, tag):
        handle, type_name = tag.get("ref"), tag.get("type", "object")
        if type(handle) is not int or not isinstance(type_name, str) or len(tag) > 3:
            raise wire.WireError("malformed handle")
        watch = self._proxies.get(handle)
        proxy = watch() if watch is not None else None
        if proxy is None:
            kind = RemoteTensor if tag.get("tensor") is True else Remote
            proxy = kind(self, handle, wire.clean_text(type_name, 100))
            self._proxies[handle] = _Watch(proxy, handle, self._released)
        return proxy

    # ---- uploads: the grader's tensors, as the student's code sees them ----------------

    def put(self, tensor):
        """The student-side copy of a grader tensor: the same copy for the rest of this scope,
        a fresh one in the next. Each tensor's bytes cross once per session, with the next
        request (the copy is made before that request's operation runs)."""
        key = id(tensor)
        if key in self._scope:
            return self._scope[key][1]
        data = None
        if key not in self._masters:
            data = wire.tensor_bytes(tensor)
            if data is None:
                raise TypeError(f"cannot upload a tensor of {tensor.dtype} on {tensor.device}")
            self._masters[key] = (tensor, len(self._masters))  # the tensor is kept, so its id stays its own
        self._next_handle -= 1
        handle = self._next_handle
        self._uploads.append(({"handle": handle, "master": self._masters[key][1],
                               "requires_grad": tensor.requires_grad}, data))
        proxy = self._proxy({"ref": handle, "type": "Tensor", "tensor": True})
        self._scope[key] = (tensor, proxy, 0)
        return proxy

    def new_scope(self):
        """Forget this check's copies: the next check gets fresh ones."""
        self._scope = {}

    def copies(self):
        """This check's copies, {id(grader tensor): entry}: the live record writes() updates."""
        return self._scope

    def share_copies(self, earlier, keys):
        """Make copies an earlier check made (`earlier`, from copies()) this check's too: what the
        submission writes into them now counts as this check's writes."""
        for key in keys:
            self._scope[key] = earlier[key]

    def writes(self):
        """[(grader tensor, its student-side copy now)] for every copy the student's code wrote
        into since the last call: the original battery's in-place semantics, reproduced."""
        if not self._scope:
            return []
        entries = list(self._scope.items())
        # Student code runs only while a frame is processed: what the last frame said still holds.
        if all(proxy._handle in self._versions for _, (_, proxy, _) in entries):
            versions = [self._versions[proxy._handle] for _, (_, proxy, _) in entries]
        else:
            versions = self.request("versions", objs=[proxy for _, (_, proxy, _) in entries])
        if not isinstance(versions, list) or len(versions) != len(entries):
            self._end("protocol", "malformed versions")
        written = []
        for (key, (tensor, proxy, seen)), version in zip(entries, versions):
            if type(version) is int and version != seen:
                self._scope[key] = (tensor, proxy, version)
                written.append((tensor, self.request("read", value=proxy)))
        return written


class Remote:
    """An object in the student's process. Attribute access, assignment, calls, iteration, len
    and arithmetic become requests; the answer is a plain value or another proxy."""

    __slots__ = ("_session", "_handle", "_type", "__weakref__")

    def __init__(self, session, handle, type_name):
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_type", type_name)

    def __getattr__(self, name):
        return self._session.request("getattr", obj=self, name=name)

    def __setattr__(self, name, value):
        self._session.request("setattr", obj=self, name=name, value=value)

    def __call__(self, *args, **kwargs):
        return self._session.request("call", fn=self, args=list(args), kwargs=kwargs, grad=_grad_mode())

    def __iter__(self):
        return iter(self._session.request("list", obj=self))

    def __len__(self):
        try:
            return self._session.request("len", obj=self)
        except RemoteError as error:  # as a local object without len() would: list() relies on it
            raise TypeError(str(error)) from None

    def __bool__(self):
        raise TypeError(f"the truth of a remote {self._type} is undecided: read() it first")

    def __repr__(self):
        return f"<remote {self._type}>"

    def _method(self, name, *args):
        return self._session.request("getattr", obj=self, name=name)(*args)

    def __getitem__(self, key):
        return self._method("__getitem__", key)

    def __neg__(self):
        return self._method("__neg__")


def _forward(name):
    return lambda self, other: self._method(name, other)


for _name in ("add", "sub", "mul", "truediv", "matmul", "pow", "radd", "rsub", "rmul", "rtruediv", "rmatmul"):
    setattr(Remote, f"__{_name}__", _forward(f"__{_name}__"))


class RemoteTensor(Remote):
    """A tensor in the student's process (its data stays there until read)."""

    __slots__ = ()


@dataclass
class Made:
    """What `Namespace.once` keeps of one fixture: its value, the numbers of the operations that
    made it, the copies of grader tensors those operations made (with the scope holding them), and
    the arguments it was made from."""

    value: object
    operations: tuple
    copies: dict
    keys: set
    arguments: tuple


class Namespace:
    """What a probe calls `ns`: the student's globals, their torch, and reading values back.
    With `share`, `once` makes each fixture once (the pass with pristine inputs); without, on
    every call (the pass that reproduces the original battery, where each check made its own)."""

    def __init__(self, session, share=True):
        self._session = session
        self._made = {} if share else None

    def __getattr__(self, name):
        if name == "torch":
            return self._session.request("module", name="torch")
        return self._session.request("global", name=name)

    def put(self, tensor):
        return self._session.put(tensor)

    def read(self, value):
        return self._session.request("read", value=value)

    def pipelined(self):
        """`with ns.pipelined():` sends the block's operations without waiting (see above)."""
        return self._session.pipelined()

    def isinstance(self, obj, cls):
        return self._session.request("isinstance", obj=obj, cls=cls)

    def same(self, a, b):
        """`a is b` in the student's process: proxies made in a pipelined block are new handles,
        so comparing them here says nothing."""
        return self._session.request("same", a=a, b=b)

    def cpu_seconds(self):
        """The CPU time the student's process has used so far (a number it reports)."""
        return self._session.request("cpu_seconds")

    def once(self, make, *arguments):
        """`make(ns, *arguments)`, made by the first probe that asks and given to the later ones
        that ask with equal arguments: one training forward can serve several checks that each
        read what it left. Made again when an error skipped any of its operations, so a later
        check sees what a fresh one would."""
        if self._made is None:
            return make(self, *arguments)
        session, made = self._session, self._made.setdefault(make, [])
        for index, kept in enumerate(made):
            if _equal(kept.arguments, arguments):
                if session.ran(*kept.operations):
                    session.share_copies(kept.copies, kept.keys)
                    kept.copies = session.copies()
                    return kept.value
                del made[index]
                break
        first, before = session.recorded, set(session.copies())
        value = make(self, *arguments)
        copies = session.copies()
        made.append(Made(value, (first, session.recorded), copies, set(copies) - before, arguments))
        return value


def _equal(a, b):
    """Equal fixture arguments: the same object, or equal values (tensors, containers, plain data)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return (a.dtype, a.shape, a.requires_grad) == (b.dtype, b.shape, b.requires_grad) and torch.equal(a, b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(map(_equal, a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b
