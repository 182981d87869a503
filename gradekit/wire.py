"""How observations cross from the sandbox to the grader: a JSON header and raw tensor bytes.

Never pickle: unpickling bytes from a sandbox would run whatever the student's code put there.
Decoding here only builds dicts, lists, tuples, scalars, strings and plain CPU tensors of an
allowed dtype; anything else the probe saw arrives as an `Unsupported` marker, which every
judgement treats as a failure (the original battery fails on non-tensors too).
"""
import json
import struct

import torch

DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)}
_HEADER = struct.Struct("<Q")


class WireError(ValueError):
    """Bytes from a sandbox that do not decode: treated as no answer."""


class Unsupported:
    """What a probe saw that cannot cross the wire (a numpy array, a custom object...)."""

    def __init__(self, type_name):
        self.type_name = type_name

    def __repr__(self):
        return f"<{self.type_name}>"

    def __eq__(self, other):
        return isinstance(other, Unsupported) and other.type_name == self.type_name


def encode(value):
    blobs = []

    def walk(v):
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, torch.Tensor):
            t = v.detach()
            dtype = str(t.dtype).removeprefix("torch.")
            if dtype not in DTYPES or t.layout != torch.strided:
                return {"unsupported": f"tensor of {t.dtype}"}
            if t.device.type != "cpu":  # compared with CPU values, the original raises too
                return {"unsupported": f"tensor on {t.device}"}
            data = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            blobs.append(data)
            return {"tensor": dtype, "shape": list(t.shape), "bytes": len(data)}
        if isinstance(v, tuple):
            return {"tuple": [walk(x) for x in v]}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {"dict": {str(k): walk(x) for k, x in v.items()}}
        if isinstance(v, Unsupported):
            return {"unsupported": v.type_name}
        return {"unsupported": type(v).__name__}

    header = json.dumps(walk(value)).encode()
    return _HEADER.pack(len(header)) + header + b"".join(blobs)


def decode(data):
    try:
        (length,) = _HEADER.unpack_from(data)
        tree = json.loads(data[_HEADER.size:_HEADER.size + length])
    except (struct.error, ValueError) as error:
        raise WireError(f"unreadable answer from the sandbox: {error}") from None
    offset = _HEADER.size + length

    def walk(v):
        nonlocal offset
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [walk(x) for x in v]
        if not isinstance(v, dict) or len(v) == 0:
            raise WireError("malformed answer from the sandbox")
        if "tensor" in v:
            dtype = DTYPES.get(v["tensor"])
            shape, size = v.get("shape"), v.get("bytes")
            if dtype is None or not isinstance(size, int) or not all(isinstance(n, int) and n >= 0 for n in shape):
                raise WireError("malformed tensor in the answer from the sandbox")
            raw = data[offset:offset + size]
            offset += size
            count = 1
            for n in shape:
                count *= n
            if len(raw) != size or size != count * torch.empty((), dtype=dtype).element_size():
                raise WireError("truncated tensor in the answer from the sandbox")
            if size == 0:
                return torch.empty(shape, dtype=dtype)
            flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype)
            return flat.reshape(shape)
        if "tuple" in v:
            return tuple(walk(x) for x in v["tuple"])
        if "dict" in v:
            return {k: walk(x) for k, x in v["dict"].items()}
        if "unsupported" in v:
            return Unsupported(str(v["unsupported"]))
        raise WireError("malformed answer from the sandbox")

    return walk(tree)

