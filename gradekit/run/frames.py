"""Frames: how a message crosses a socket, on both of the grader's channels.

A frame is two little-endian u64 lengths, a JSON document, then a safetensors buffer (the
tensors the document refers to, empty in most frames). The control channel (grader and zygote)
sends small documents, with a descriptor now and then and a battery's inputs once; the
submission's channel (wire.py) gives the documents and tensors their meaning. `receive` checks a
frame's lengths against the budget before it allocates anything.

Only the standard library: the grader starts its sandboxes with this before it imports torch.
"""
import array
import json
import socket
import struct
import time

FRAME = struct.Struct("<QQ")
MAX_DOCUMENT = 8 << 20  # bytes of JSON in one frame


class WireError(ValueError):
    """Bytes that break the protocol: the frame is refused, and with it the connection."""


class Closed(ConnectionError):
    """The other side closed the connection or did not answer in time."""


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


def send(sock, document, blobs=(), fds=()):
    """Send one frame: a JSON-able document and the tensors it refers to as {"tensor": key}, each
    given as (dtype code, shape, bytes) (wire.tensor_bytes); `fds` (control messages only) travel
    with it as SCM_RIGHTS."""
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
    """(document, fds, safetensors buffer) of a control frame, or (None, fds, b"") at the end of
    the stream. Only between the grader and the zygote, which trust each other."""
    fds = array.array("i")
    # close-on-exec, as Python's own descriptors are: no program the receiver starts inherits them
    head, ancillary, _, _ = sock.recvmsg(FRAME.size, socket.CMSG_SPACE(4 * fds.itemsize), socket.MSG_CMSG_CLOEXEC)
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    while head and len(head) < FRAME.size:
        more = sock.recv(FRAME.size - len(head))
        if not more:
            break
        head += more
    if len(head) < FRAME.size:
        return None, list(fds), b""
    size, blob_size = FRAME.unpack(head)
    try:
        body = _exactly(sock, size, None)
        blob = _exactly(sock, blob_size, None) if blob_size else b""
    except Closed:
        return None, list(fds), b""
    return json.loads(body), list(fds), blob


def receive(sock, deadline=None, budget=None):
    """(document, safetensors buffer, bytes received) of the next frame; None at a clean end of stream.
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
    return document, blob, FRAME.size + text_size + blob_size


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
