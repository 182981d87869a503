"""The wire protocol between the grader and a student's process: the one format both sides speak.

A message is a frame: two little-endian u64 lengths, a JSON document, then a safetensors buffer
holding the tensors the document refers to. JSON carries plain values as they are; everything
else is a tagged one-key object:

    {"tensor": "0"}        tensor "0" of the frame's safetensors buffer (its data)
    {"ref": 7, "type": t}  an object that lives in the student's process (handle 7, type name t)
    {"tuple": [...]}  {"dict": {...}}  {"size": [...]}  {"dtype": "float32"}  {"device": "cpu"}
    {"opaque": "ndarray"}  a value that was asked for as data but is not data

The grader trusts nothing that comes out of the sandbox. `receive` checks a frame's lengths
against the budget before it allocates anything, safetensors (made for untrusted files) parses
the tensors, and `decode` rebuilds plain values only, within depth and size limits, with every
string cleaned (valid UTF-8, no control characters, bounded length). Never pickle.

This module runs on both sides, so it imports only the standard library, torch and safetensors.
"""
import array
import json
import re
import socket
import struct
import time

import torch

FRAME = struct.Struct("<QQ")
# safetensors' dtype codes, for the dtypes that may cross.
DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
          torch.bool: "BOOL"}
DTYPE_NAMES = {str(d).removeprefix("torch."): d for d in DTYPES}
MAX_DEPTH = 32
MAX_NODES = 200_000
MAX_TEXT = 2000  # characters kept of any one string from a submission
MAX_DOCUMENT = 8 << 20  # bytes of JSON in one frame
# Operations a pipelined block records (gradekit/grade/remote.py): their results can be kept in
# the student's process under a handle the grader chose (an operation's "as").
PIPELINED = frozenset({"getattr", "setattr", "call", "global", "module", "same", "isinstance"})


class WireError(ValueError):
    """Bytes that break the protocol: the frame is refused, and with it the connection."""


class Closed(ConnectionError):
    """The other side closed the connection or did not answer in time."""


# ---- text that came from a submission -----------------------------------------------------

# Control characters, line and paragraph separators, the byte-order mark, and the bidirectional
# controls (U+061C, U+200E-F, U+202A-E, U+2066-9) that can make text display as other text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def clean_text(text, limit=MAX_TEXT):
    """Valid UTF-8, no control characters but newline and tab (nor bidirectional controls), at most
    `limit` characters."""
    text = str(text).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    text = _CONTROL.sub("\ufffd", text)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


# ---- tensors --------------------------------------------------------------------------------

def tensor_bytes(t):
    """(dtype code, shape, raw bytes) of a CPU tensor of an allowed dtype, else None."""
    if not isinstance(t, torch.Tensor) or t.layout != torch.strided or t.device.type != "cpu":
        return None
    code = DTYPES.get(t.dtype)
    if code is None or t.is_quantized:
        return None
    t = t.detach().resolve_conj().resolve_neg().contiguous()
    raw = t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b""
    return code, list(t.shape), memoryview(raw).cast("B") if t.numel() else b""


def _safetensors(blobs):
    """The safetensors encoding of [(code, shape, bytes)], keyed "0", "1", ...: a header then the data.
    Written here rather than with safetensors.torch.save, which copies every tensor twice."""
    header, offset = {}, 0
    for key, (code, shape, raw) in enumerate(blobs):
        header[str(key)] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return [struct.pack("<Q", len(text)), text, *(raw for _, _, raw in blobs)]


def _load_safetensors(blob):
    from safetensors.torch import load
    try:
        return load(bytes(blob))
    except Exception as error:  # safetensors raises its own error types for malformed buffers
        raise WireError(f"malformed tensor data: {clean_text(error, 200)}") from None


# ---- frames ---------------------------------------------------------------------------------

def send(sock, document, blobs=(), fds=()):
    """Send one frame: a JSON-able document and the tensors it refers to as {"tensor": key};
    `fds` (control messages only) travel with it as SCM_RIGHTS."""
    text = json.dumps(document, separators=(",", ":")).encode()
    parts = _safetensors(blobs) if blobs else []
    size = sum(len(p) for p in parts)
    head = FRAME.pack(len(text), size) + text
    if fds:
        sent = socket.send_fds(sock, [head], list(fds))
        head = head[sent:]
    sock.sendall(head)
    for part in parts:
        sock.sendall(part)


def receive_control(sock):
    """(document, fds) of a small control frame, or (None, fds) at the end of the stream.
    Only between the grader and the zygote, which trust each other."""
    fds = array.array("i")
    head, ancillary, _, _ = sock.recvmsg(FRAME.size, socket.CMSG_SPACE(4 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    while head and len(head) < FRAME.size:
        more = sock.recv(FRAME.size - len(head))
        if not more:
            break
        head += more
    if len(head) < FRAME.size:
        return None, list(fds)
    size, _ = FRAME.unpack(head)
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            return None, list(fds)
        body += chunk
    return json.loads(body), list(fds)


def receive(sock, deadline=None, budget=None):
    """(document, tensors, bytes received) of the next frame; None at a clean end of stream.
    `budget`, where given, is the most bytes this frame may hold: a larger one is refused unread."""
    head = _exactly(sock, FRAME.size, deadline, allow_end=True)
    if head is None:
        return None
    text_size, blob_size = FRAME.unpack(head)
    if text_size > MAX_DOCUMENT or (budget is not None and text_size + blob_size > budget):
        raise WireError(f"a frame of {text_size + blob_size} bytes is over the budget")
    text = _exactly(sock, text_size, deadline)
    blob = _exactly(sock, blob_size, deadline) if blob_size else b""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise WireError("malformed JSON in a frame") from None
    return document, (_load_safetensors(blob) if blob else {}), FRAME.size + text_size + blob_size


def _exactly(sock, size, deadline, allow_end=False):
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Closed("no answer in time")
            sock.settimeout(remaining)
        try:
            n = sock.recv_into(view[got:])
        except socket.timeout:
            raise Closed("no answer in time") from None
        except OSError as error:
            raise Closed(str(error)) from None
        if n == 0:
            if allow_end and got == 0:
                return None
            raise Closed("the connection closed in the middle of a frame")
        got += n
    return buffer


# ---- values ---------------------------------------------------------------------------------

def encode(value, refer, blobs):
    """The JSON form of `value`. `refer(obj)` gives the tag of anything that is not plain data
    (a {"ref": ...} handle, or {"tensor": key} after appending to `blobs`)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Size):
        return {"size": [int(n) for n in value]}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": str(value)}
    if type(value) is tuple:
        return {"tuple": [encode(v, refer, blobs) for v in value]}
    if type(value) is list:
        return [encode(v, refer, blobs) for v in value]
    if type(value) is dict and all(type(k) is str for k in value):
        return {"dict": {k: encode(v, refer, blobs) for k, v in value.items()}}
    return refer(value)


def decode(document, tensors, resolve, text=str):
    """The value a JSON form stands for. `resolve(tag)` turns a {"ref": ...} tag into an object;
    `text` treats each string (the grader cleans them). Depth, size and tags are checked."""
    nodes = 0
    used = set()

    def walk(v, depth):
        nonlocal nodes
        nodes += 1
        if depth > MAX_DEPTH or nodes > MAX_NODES:
            raise WireError("an answer nested too deeply or too large")
        if v is None or isinstance(v, (bool, int, float)):
            return v
        if isinstance(v, str):
            return text(v)
        if isinstance(v, list):
            return [walk(x, depth + 1) for x in v]
        if not isinstance(v, dict) or len(v) == 0:
            raise WireError("malformed value")
        if "ref" in v:
            return resolve(v)
        if len(v) != 1:
            raise WireError("malformed value")
        (tag, body), = v.items()
        if tag == "tensor":
            if not isinstance(body, str) or body not in tensors or body in used:
                raise WireError("a value refers to missing tensor data")
            used.add(body)
            return tensors[body]
        if tag == "tuple" and isinstance(body, list):
            return tuple(walk(x, depth + 1) for x in body)
        if tag == "dict" and isinstance(body, dict):
            return {text(k): walk(x, depth + 1) for k, x in body.items()}
        if tag == "size" and isinstance(body, list) and all(type(n) is int for n in body):
            return torch.Size(body)
        if tag == "dtype" and body in DTYPE_NAMES:
            return DTYPE_NAMES[body]
        if tag == "device" and body == "cpu":
            return torch.device("cpu")
        if tag == "opaque" and isinstance(body, str):
            return Opaque(text(body))
        raise WireError("malformed value")

    return walk(document, 0)


class Opaque:
    """A value that was read as data but is not data (a numpy array, a custom object, a tensor on
    another device): it compares equal to nothing a judgement expects, so checks fail on it."""

    def __init__(self, type_name):
        self.type_name = type_name

    def __repr__(self):
        return f"<{self.type_name}>"

    def __eq__(self, other):
        return isinstance(other, Opaque) and other.type_name == self.type_name

    __hash__ = None
