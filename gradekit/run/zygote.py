"""The long-lived process of a sandbox: imports torch once, then forks a fresh world per submission.

Started by gradekit/grade/sandbox.py as `python -I -S -c ...` with the control socket's fd as
argument. Control messages are small JSON frames (frames.py); a "fork" message carries, as an
SCM_RIGHTS file descriptor, one end of a socket the grader made for that submission. The
submission's process talks to the grader on it directly: student code and its data never pass
through this process, so no later fork can find them in memory it inherits.

    grader -> zygote   {"isolated": ..., "python": [...]}
                                            once: bubblewrap or weak mode, the Python prefixes
                                            (kept importable under each world's scratch /tmp)
    zygote -> grader   {"ready": true}
    grader -> zygote   {"preload": name} + tensors
                                            once per battery: its inputs, which every later world
                                            holds from its start (the grader's uploads of them
                                            then carry no data)
    zygote -> grader   {"preloaded": name}
    grader -> zygote   {"fork": id, "limits": {...}} + fd
                                            a new world for one submission (world.py), under
                                            the course's caps
    zygote -> grader   {"started": id}
    grader -> zygote   {"kill": id}         optional: the grader's deadline passed
    zygote -> grader   {"done": id, ...}    how the student's process ended; "unclean" if
                                            processes outlived it (the grader then replaces us)
"""
import ctypes
import gc
import os
import select
import signal
import socket
import sys
import tempfile
import time

from gradekit.run import frames, heap, world

PR_SET_DUMPABLE = 4


def _warm_up():
    """Pay once, here, what every submission would otherwise pay after its fork. Not an optimizer:
    making one imports torch._dynamo and sympy (about 70 MB), which every fork would copy."""
    heap.keep_freed_memory()  # before torch allocates: inherited by every world
    import torch
    import torch.nn.functional  # noqa: F401
    from safetensors.torch import load  # noqa: F401

    torch.set_num_threads(1)  # one core per sandbox: parallelism comes from the workers
    weight = torch.nn.Parameter(torch.ones(2, 3))
    out = torch.nn.functional.batch_norm(weight, None, None, training=True)
    out.sum().backward()  # a gradient argument to backward() would import sympy (through torch.fx)
    with torch.no_grad():
        weight.add_(weight.grad, alpha=-0.1)
    torch.randn(2).var()
    return _cell_transformer()


def _cell_transformer():
    """IPython's cell transformer (magics and shell escapes become calls of get_ipython()), loaded
    without running the IPython package's __init__, which imports the whole shell: about 80 ms of
    every box's boot, and memory every world would inherit. Its two modules need only the standard
    library. The stand-in packages leave sys.modules afterwards, so a submission's own `import
    IPython` gets the real package."""
    import importlib.util
    import types
    root = os.path.dirname(importlib.util.find_spec("IPython").origin)  # found, not run
    stand_ins = ("IPython", "IPython.core", "IPython.utils")
    for name in stand_ins:
        package = types.ModuleType(name)
        package.__path__ = [os.path.join(root, *name.split(".")[1:])]
        sys.modules[name] = package
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    finally:
        for name in stand_ins + ("IPython.core.inputtransformer2", "IPython.utils.tokenutil"):
            sys.modules.pop(name, None)
    return TransformerManager().transform_cell


def main():
    gc.disable()  # while torch imports: a quarter of a million objects that all live on (see below)
    control = socket.socket(fileno=int(sys.argv[1]))
    os.set_inheritable(control.fileno(), False)  # no world's init inherits it
    setup, _, _ = frames.receive_control(control)
    if setup["isolated"]:
        if world.SLEEP is None:
            sys.exit("the sandbox needs the sleep program (coreutils) in /usr/bin or /bin")
        world.own_pid_namespace(control)
        setup["own_namespace"] = os.open("/proc/self/ns/pid", os.O_RDONLY)
        setup["box"] = world.processes()
    transform = _warm_up()
    from gradekit.run.server import CappedOutput, Server

    preloaded = {}  # master key -> a battery's input, as the grader preloaded it

    def serve(channel):
        sys.stdout = sys.stderr = CappedOutput()
        import torch
        torch.manual_seed(0)  # every submission starts from the same random state
        Server(channel, transform, preloaded).serve()

    # What the zygote made stays out of every collection in the worlds: a collection there then
    # neither walks these objects nor writes to the pages a fork shares with us. The collector was
    # off until now, as Python's documentation of gc.freeze advises for a process that forks:
    # collections during the import found next to nothing and cost a quarter of a core-second.
    gc.freeze()
    gc.enable()
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # not ptrace-able, /proc/<pid>/mem unreadable
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    frames.send(control, {"ready": True})
    while True:
        message, fds, blob = frames.receive_control(control)
        if message is None:
            return
        if "preload" in message:
            preloaded.update(_inputs(message["preload"], blob))
            frames.send(control, {"preloaded": message["preload"]})
            continue
        if "fork" not in message or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            continue  # a "kill" that arrived after its submission ended
        _one_submission(control, message["fork"], socket.socket(fileno=fds[0]), {**setup, "limits": message["limits"]},
                        serve)


def _inputs(name, blob):
    """{master key: tensor} of a preload's tensors, each kept in memory of its own (the frame's
    buffer is freed), out of every later collection."""
    from gradekit.run import wire  # torch: imported by now
    tensors = wire.load_tensors(blob)
    inputs = {f"{name}:{key}": tensor.clone() for key, tensor in tensors.items()}
    gc.collect()
    gc.freeze()
    return inputs


def _one_submission(control, job, channel, setup, serve):
    if setup["isolated"]:
        workdir, init = "/tmp", world.spawn_init(setup["own_namespace"])
    else:
        workdir, init = tempfile.mkdtemp(prefix="gradekit-submission-"), None
        os.chmod(workdir, 0o777)
    try:
        pid = os.fork()
        if pid == 0:
            control.close()
            _close_other_fds(keep={channel.fileno(), 0, 1, 2})
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            world.student(channel, setup, serve, workdir)  # never returns
    finally:
        if init is not None:
            world.leave_namespace(setup["own_namespace"])
    channel.close()
    frames.send(control, {"started": job})
    killed = _wait(pid, control, job)
    _, status = os.waitpid(pid, 0)
    unclean = False
    if init is None:
        world.end_weak(pid, workdir)
    else:
        os.kill(init, signal.SIGKILL)  # and with it, the kernel ends every process left in its namespace
        os.waitpid(init, 0)
        if world.stragglers(setup["box"]):  # cannot happen if the kernel did its part
            world.kill_stragglers(setup["box"])
            deadline = time.monotonic() + 2
            while world.stragglers(setup["box"]) and time.monotonic() < deadline:
                time.sleep(0.02)
            unclean = bool(world.stragglers(setup["box"]))
    frames.send(control, {"done": job, "killed": killed, "unclean": unclean, **world.exit_code(status)})


def _wait(pid, control, job):
    """Wait for the student's process to end; kill it if the grader asks. True if it was killed."""
    pidfd = os.pidfd_open(pid)
    killed = False
    try:
        while True:
            ready, _, _ = select.select([pidfd, control], [], [])
            if pidfd in ready:
                return killed
            message, fds, _ = frames.receive_control(control)
            for fd in fds:
                os.close(fd)
            if message is None:  # the grader is gone: end this submission, then ourselves
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                sys.exit(0)
            if message.get("kill") == job:
                os.kill(pid, signal.SIGKILL)
                killed = True
    finally:
        os.close(pidfd)


def _close_other_fds(keep):
    for fd in sorted(int(n) for n in os.listdir("/proc/self/fd")):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


if __name__ == "__main__":
    main()
