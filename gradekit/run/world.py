"""A fresh world for each submission, made inside the sandbox by the zygote's forks.

    zygote                    long-lived; imported torch; never sees student code or data
      └ keeper                one per submission: makes a new PID namespace, reports how it ended
          └ init (pid 1)      new mount and IPC namespaces: a fresh capped tmpfs on /tmp and
              │               /dev/shm, everything else read-only; reaps, then exits
              └ student       no capabilities, resource limits; runs the cells and the server

When the init exits, the kernel kills everything left in its PID namespace, and the namespaces
(with their tmpfs and SysV IPC objects) go with the last process: nothing one submission starts,
writes or allocates can reach the next. Without bubblewrap ("weak" mode) there are no namespaces:
the student gets a scratch folder and its process group is killed afterwards.
"""
import ctypes
import json
import os
import resource
import shutil
import signal
import tempfile

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 2, 4, 32, 4096, 16384, 1 << 18, 1 << 21
MS_RDONLY = 1
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
LINUX_CAPABILITY_VERSION_3 = 0x20080522
NOBODY = 65534

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _mount(source, target, fstype, flags, data=None):
    encode = lambda s: s.encode() if s else None  # noqa: E731
    _check(_libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)), f"mount {target}")


def _exit_code(status):
    """How a waited-for process ended, as JSON-able data."""
    if os.WIFSIGNALED(status):
        return {"signal": signal.Signals(os.WTERMSIG(status)).name}
    return {"exit": os.WEXITSTATUS(status)}


def keeper(channel, status_fd, setup, serve):
    """Run in the zygote's fork for one submission; never returns."""
    try:
        if setup["isolated"]:
            _check(_libc.unshare(CLONE_NEWPID), "unshare")
        read_end, write_end = os.pipe()
        init = os.fork()
        if init == 0:
            os.close(read_end)
            _init(channel, write_end, setup, serve)
        os.close(write_end)
        channel.close()
        _, status = os.waitpid(init, 0)
        report = os.read(read_end, 4096) or json.dumps({"init": _exit_code(status)}).encode()
        os.write(status_fd, report)
    finally:
        os._exit(0)


def _init(channel, status_fd, setup, serve):
    """pid 1 of the submission's namespace (in weak mode, just its parent)."""
    try:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the zygote may kill the keeper
        limits = setup["limits"]
        if setup["isolated"]:
            _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare")
            _mount(None, "/", None, MS_REC | MS_PRIVATE)
            scratch = f"size={limits['scratch_mb']}m,mode=1777,nr_inodes=10000"
            _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, scratch)
            _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={limits['scratch_mb']}m,mode=1777")
            _mount(None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_RELATIME)
            workdir = "/tmp"
        else:
            workdir = tempfile.mkdtemp(prefix="gradekit-submission-")
            os.chmod(workdir, 0o777)
        student = os.fork()
        if student == 0:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            os.close(status_fd)
            _become_student(limits, setup["isolated"], workdir)
            serve(channel)
            os._exit(0)
        channel.close()
        _, status = os.waitpid(student, 0)
        if not setup["isolated"]:
            _kill_group(student)
            shutil.rmtree(workdir, ignore_errors=True)
        os.write(status_fd, json.dumps(_exit_code(status)).encode())
    finally:
        os._exit(0)


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _become_student(limits, isolated, workdir):
    """Give up everything the submission must not have, then leave the process to it."""
    if not isolated:
        os.setsid()  # its own process group, killed as a whole afterwards
    memory = limits["memory_mb"] << 20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["scratch_mb"] << 20,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    if isolated:
        _drop_capabilities()
    else:  # weak mode: RLIMIT_NPROC counts the user's processes machine-wide; the grader sized it
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
        if os.getuid() == 0:  # a grader run as root without bubblewrap: at least not root
            os.chown(workdir, NOBODY, NOBODY)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    os.chdir(workdir)
    os.environ["HOME"] = os.environ["TMPDIR"] = workdir
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    os.close(null)


def _drop_capabilities():
    """The zygote holds CAP_SYS_ADMIN in the sandbox's user namespace to make these mounts; the
    student's process keeps no capability at all, so it cannot undo them."""
    for capability in range(64):
        _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    _check(_libc.capset(ctypes.byref(Header(LINUX_CAPABILITY_VERSION_3, 0)), (Data * 2)()), "capset")


def stragglers():
    """Processes in this sandbox other than its init and the caller (the zygote)."""
    mine = {1, os.getpid()}
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in mine:
            found.append(int(entry))
    return found


def kill_stragglers():
    for pid in stragglers():
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                break
        except ChildProcessError:
            break
