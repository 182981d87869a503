"""A fresh world for each submission, made inside the sandbox by the zygote's forks.

    zygote                    long-lived; imported torch; never sees student code or data
      └ keeper                one per submission: makes a new PID namespace, reports how it ended
          └ init (pid 1)      new mount and IPC namespaces: a fresh capped tmpfs on /tmp and
              │               /dev/shm, everything else read-only; reaps, then exits
              └ student       no capabilities, resource limits; runs the cells and the server

When the init exits, the kernel kills everything left in its PID namespace, and the namespaces
(with their tmpfs and SysV IPC objects) go with the last process: nothing one submission starts,
writes or allocates can reach the next. The box's own processes stay out of the world's sight
(/proc/<pid> of each is masked), every mount but the scratch tmpfs is read-only (procfs and the
device nodes included: when the grader runs as root, the student's uid is root's outside the box),
and the student's process holds no descriptor but its channel. A seccomp filter refuses the system
calls whose effects no namespace or cap contains: the kernel keyrings (shared by every world of
the box) and memory held outside the address space (memfd, SysV shared memory and message
queues, which RLIMIT_AS does not count). Without bubblewrap ("weak" mode) there are no
namespaces: the student gets a scratch folder and its process group is killed afterwards.
"""
import ctypes
import json
import os
import platform
import resource
import shutil
import signal
import tempfile

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 2, 4, 32, 4096, 16384, 1 << 18, 1 << 21
MS_RDONLY, MS_NOEXEC, MS_NOATIME, MS_NODIRATIME, MS_STRICTATIME = 1, 8, 1024, 2048, 1 << 24
# A mount's options as /proc/self/mountinfo lists them, as mount flags (a remount must keep them).
MOUNT_OPTIONS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
                 "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}
SCRATCH = ("/tmp", "/dev/shm")
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 24, 38, 22, 2
# Refused system calls (add_key, request_key, keyctl, memfd_create, memfd_secret, shmget, msgget), by
# architecture: its seccomp audit code and its numbers.
REFUSED_CALLS = {
    "x86_64": (0xC000003E, (248, 249, 250, 319, 447, 29, 68)),
    "aarch64": (0xC00000B7, (217, 218, 219, 279, 447, 194, 186)),  # the generic table
    "riscv64": (0xC00000F3, (217, 218, 219, 279, 447, 194, 186)),
}
X32_SYSCALL_BIT = 0x40000000
EPERM = 1
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
            # When the box's memory cgroup is full, the kernel kills the world's processes (this init
            # and what it starts inherit the score) before the zygote that outlives them. Written
            # while /proc is still writable; raising one's own score needs no privilege.
            with open("/proc/self/oom_score_adj", "w") as score:
                score.write("1000")
            _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare")
            _mount(None, "/", None, MS_REC | MS_PRIVATE)
            _mount_scratch(f"size={limits['scratch_mb']}m,mode=1777,nr_inodes=10000", setup["python"])
            _read_only_but_scratch()
            _mask_processes_outside()
            workdir = "/tmp"
        else:
            workdir = tempfile.mkdtemp(prefix="gradekit-submission-")
            os.chmod(workdir, 0o777)
        student = os.fork()
        if student == 0:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            _become_student(limits, setup["isolated"], workdir, channel.fileno())
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


def _mount_scratch(options, keep):
    """A fresh capped tmpfs on each scratch folder. Folders of `keep` below one (a virtual
    environment in /tmp, where a CI run may clone the course) would vanish under it: each is held
    by a descriptor first, then bound back in its place (read-only, as every mount but the scratch
    space is made next), so the submission can still import what the zygote did not."""
    below = [path for path in keep if any(path.startswith(target + "/") for target in SCRATCH)]
    held = {path: os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for path in below}
    for target in SCRATCH:
        _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)
    for path, fd in held.items():
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)


def _mount_points():
    """[(mount point, its options)] of this mount namespace, from /proc/self/mountinfo."""
    found = []
    with open("/proc/self/mountinfo") as table:
        for line in table:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")
            found.append((point, fields[5].split(",")))
    return found


def _read_only_but_scratch():
    """Remount read-only every mount the world can see but its scratch tmpfs: procfs (its sysctl
    files) and the device nodes bound from the host (their inodes) are writable otherwise."""
    for point, options in _mount_points():
        if "rw" in options and point not in SCRATCH:
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY
            for option in options:
                flags |= MOUNT_OPTIONS.get(option, 0)
            _mount(None, point, None, flags)


def _mask_processes_outside():
    """Hide every process that is not in the world (the box's own: bubblewrap, zygote, keeper,
    this init) behind an empty read-only folder: /proc is the box's, and the new PID namespace
    alone does not hide their environment, command line or descriptors."""
    pids = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    threads = set()
    for pid in pids:
        try:
            threads.update(os.listdir(f"/proc/{pid}/task"))  # reachable as /proc/<tid>, though not listed
        except OSError:
            pass
    for pid in pids:
        try:
            _hide(f"/proc/{pid}")
        except FileNotFoundError:
            pass  # it ended meanwhile
    for tid in threads.difference(pids):
        try:
            _hide(f"/proc/{tid}")
        except OSError:
            pass


def _hide(path):
    _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=1,mode=555")


def _refuse_calls():
    """Install the seccomp filter (see the module's docstring): the refused calls fail with EPERM."""
    machine = platform.machine()
    if machine not in REFUSED_CALLS:
        raise OSError(f"no seccomp table for {machine}")
    arch, numbers = REFUSED_CALLS[machine]

    class Instruction(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Instruction))]

    load, equal, at_least, give = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_RET|K
    allow, refuse = 0x7FFF0000, 0x00050000 | EPERM  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO
    checks = [(at_least, X32_SYSCALL_BIT)] + [(equal, n) for n in numbers]
    deny_at = 3 + len(checks) + 1  # index of the final "refuse"
    code = [(load, 0, 0, 4), (equal, 0, deny_at - 2, arch), (load, 0, 0, 0)]  # another ABI: refuse all
    for kind, value in checks:
        code.append((kind, deny_at - len(code) - 1, 0, value))
    code += [(give, 0, 0, allow), (give, 0, 0, refuse)]
    instructions = (Instruction * len(code))(*code)
    program = Program(len(code), instructions)
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0), "seccomp")


def _close_fds_but(keep):
    for name in os.listdir("/proc/self/fd"):
        if int(name) not in keep:
            try:
                os.close(int(name))
            except OSError:
                pass


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _become_student(limits, isolated, workdir, channel):
    """Give up everything the submission must not have, then leave the process to it."""
    _close_fds_but({0, 1, 2, channel})  # the keeper's report pipe, above all
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
    _refuse_calls()
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
