"""The process that lives in a sandbox and forks one child per submission.

torch is imported once, here, before any student code runs; each submission gets a fresh fork of
this clean state, so the per-submission cost is the battery itself. After each child the zygote
kills every other process in the sandbox and wipes the scratch folder: nothing one submission
leaves behind reaches the next. Started by gradekit.grade.sandbox, never by hand.

Protocol on the socket (fd in argv[1]): length-prefixed JSON messages; a job carries the write
end of a fresh pipe (SCM_RIGHTS) on which the child sends its frames straight to the grader.
"""
import ctypes
import importlib
import json
import os
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import time

from gradekit.grade.probe import CappedOutput, frame, run_submission

LENGTH = struct.Struct("<I")
PR_SET_DUMPABLE = 4


def send_json(sock, message):
    data = json.dumps(message).encode()
    sock.sendall(LENGTH.pack(len(data)) + data)


def recv_json(sock):
    """(message, fds) or (None, []) at end of stream."""
    head, fds, _, _ = socket.recv_fds(sock, LENGTH.size, 4)
    if not head:
        return None, []
    while len(head) < LENGTH.size:
        head += sock.recv(LENGTH.size - len(head))
    (length,) = LENGTH.unpack(head)
    data = b""
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            return None, fds
        data += chunk
    return json.loads(data), fds


def main():
    sock = socket.socket(fileno=int(sys.argv[1]))
    setup, _ = recv_json(sock)
    import torch  # the point of the zygote: paid once

    from IPython.core.inputtransformer2 import TransformerManager

    torch.set_num_threads(1)  # one core per sandbox; parallelism comes from the workers
    modules = {name: importlib.import_module(name) for name in setup["modules"]}
    inputs = {name: module.make_inputs() for name, module in modules.items()}
    for module in modules.values():  # pay lazy imports once here, not in every child
        getattr(module, "warm_up", lambda: None)()
    transform = TransformerManager().transform_cell
    # Children run as the same user: make this process impossible to ptrace or read.
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    send_json(sock, {"ready": True})
    while True:
        job, fds = recv_json(sock)
        if job is None:
            return
        scratch = _fresh_scratch(setup)
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(job, fds[0], setup, modules, inputs, transform, scratch)
        os.close(fds[0])
        send_json(sock, {"started": job["job"]})  # from here on, what happens is the submission's doing
        outcome = _wait(pid, setup["limits"]["wall_seconds"])
        _clean_up(pid, setup, scratch)
        send_json(sock, {"done": job["job"], **outcome})


def _child(job, fd, setup, modules, inputs, transform, scratch):
    try:
        limits = setup["limits"]
        if not setup["isolated"]:
            os.setsid()  # own process group, so the zygote can kill what it leaves behind
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        memory = limits["memory_mb"] * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits.get("nproc"):
            resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        sys.stdout = sys.stderr = CappedOutput(limits["output_kb"] * 1024)
        os.chdir(scratch)
        out = os.fdopen(fd, "wb", buffering=0)
        checks = [tuple(check) for check in job["checks"]]
        run_submission(job["cells"], job["class_name"], checks, modules, inputs,
                       lambda payload: out.write(frame(payload)), transform)
    finally:
        os._exit(0)


def _wait(pid, wall_seconds):
    """How the child ended: exited, signalled, or killed at the wall-clock cap."""
    started = time.monotonic()
    pidfd = os.pidfd_open(pid)
    ready, _, _ = select.select([pidfd], [], [], wall_seconds)
    os.close(pidfd)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return {"ended": "timeout", "seconds": round(time.monotonic() - started, 3)}
    _, status = os.waitpid(pid, 0)
    seconds = round(time.monotonic() - started, 3)
    if os.WIFSIGNALED(status):
        return {"ended": "signal", "signal": signal.Signals(os.WTERMSIG(status)).name, "seconds": seconds}
    return {"ended": "exit", "code": os.WEXITSTATUS(status), "seconds": seconds}


def _fresh_scratch(setup):
    path = os.path.join(setup["scratch"], "work")
    os.makedirs(path, exist_ok=True)
    return path


def _clean_up(pid, setup, scratch):
    if setup["isolated"]:
        # Alone in this PID namespace but for bwrap's init: kill everything the child started.
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    while True:  # reap whatever was ours
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                break
        except ChildProcessError:
            break
    for folder in (setup["scratch"], "/dev/shm") if setup["isolated"] else (setup["scratch"],):
        for entry in os.scandir(folder) if os.path.isdir(folder) else ():
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


if __name__ == "__main__":
    main()
