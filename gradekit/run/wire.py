"""The wire protocol between the grader and a student's process: the one format both sides speak.

A message is a frame (frames.py): a JSON document, then a safetensors buffer holding the
tensors the document refers to. JSON carries plain values as they are; everything
else is a tagged one-key object:

    {"tensor": "0"}        tensor "0" of the frame's safetensors buffer (its data)
    {"ref": 7, "type": t}  an object that lives in the student's process (handle 7, type name t)
    {"tuple": [...]}  {"dict": {...}}  {"size": [...]}  {"dtype": "float32"}  {"device": "cpu"}
    {"opaque": "ndarray"}  a value that was asked for as data but is not data

The grader trusts nothing that comes out of the sandbox. A frame's lengths are checked against
the budget before anything is allocated, safetensors (made for untrusted files) parses
the tensors, and `decode` rebuilds plain values only, within depth and size limits, with every
string cleaned (valid UTF-8, no control characters, bounded length). Never pickle.

This module runs on both sides, so it imports only the standard library, torch and safetensors.
"""
import re

import torch

from gradekit.run import frames
from gradekit.run.frames import Closed, WireError, send  # noqa: F401 (the submission's channel speaks them too)

# safetensors' dtype codes, for the dtypes that may cross.
DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
          torch.bool: "BOOL"}
DTYPE_NAMES = {str(d).removeprefix("torch."): d for d in DTYPES}
MAX_DEPTH = 32
MAX_NODES = 200_000
MAX_TEXT = 2000  # characters kept of any one string from a submission
# Operations a pipelined block records (gradekit/grade/remote.py): their results can be kept in
# the student's process under a handle the grader chose (an operation's "as").
PIPELINED = frozenset({"getattr", "setattr", "call", "global", "module", "same", "isinstance"})


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


def load_tensors(blob):
    """{key: tensor} of a safetensors buffer; WireError where it is malformed."""
    from safetensors.torch import load
    try:
        return load(bytes(blob))
    except Exception as error:  # safetensors raises its own error types for malformed buffers
        raise WireError(f"malformed tensor data: {clean_text(error, 200)}") from None


# ---- frames ---------------------------------------------------------------------------------

def receive(sock, deadline=None, budget=None):
    """(document, tensors, bytes received) of the next frame (frames.receive), its tensors parsed
    by safetensors; None at a clean end of stream."""
    found = frames.receive(sock, deadline, budget)
    if found is None:
        return None
    document, blob, size = found
    return document, (load_tensors(blob) if blob else {}), size


# ---- values ---------------------------------------------------------------------------------

PLAIN = frozenset({type(None), bool, int, float, str})


def encode(value, refer, blobs):
    """The JSON form of `value`. `refer(obj)` gives the tag of anything that is not plain data
    (a {"ref": ...} handle, or {"tensor": key} after appending to `blobs`)."""
    if type(value) in PLAIN or isinstance(value, (bool, int, float, str)):  # the common case first
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
