"""A fresh world for each submission, made inside the sandbox by the zygote.

    zygote                    long-lived; imported torch; never sees student code or data
      ├ init (pid 1)          `sleep`, spawned (not forked) into a new PID namespace: holds it open
      └ student (pid 2)       forked into that namespace; makes new mount and IPC namespaces of its
                              own (a fresh capped tmpfs on /tmp and /dev/shm, everything else
                              read-only), then gives up its capabilities and runs the cells and
                              the server under resource limits

The zygote waits for the student's process, then kills the init: the kernel kills everything
left in the PID namespace, and the namespaces (with their tmpfs and SysV IPC objects) go with the
last process, so nothing one submission starts, writes or allocates can reach the next. The init is
a small program spawned without copying the zygote, and the student's process is the zygote's
own fork: one copy of the zygote's page tables a submission, where a Python init between them
would cost two more (about 12 ms of kernel time). The box's own processes stay out of the world's
sight (/proc/<pid> of each is masked), every mount but the scratch tmpfs is read-only (procfs and
the device nodes included: when the grader runs as root, the student's uid is root's outside the
box), and the student's process holds no descriptor but its channel. A seccomp filter refuses the
system calls whose effects no namespace or cap contains: the kernel keyrings (shared by every world
of the box), memory held outside the address space (memfd, SysV shared memory and message queues,
which RLIMIT_AS does not count), and tracing another process (the init runs unfiltered). Without
bubblewrap ("weak" mode) there are no namespaces: the student gets a scratch folder and its
process group is killed afterwards.
"""
import ctypes
import os
import platform
import resource
import shutil
import signal

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 2, 4, 32, 4096, 16384, 1 << 18, 1 << 21
MS_RDONLY, MS_NOEXEC, MS_NOATIME, MS_NODIRATIME, MS_STRICTATIME = 1, 8, 1024, 2048, 1 << 24
# A mount's options as /proc/self/mountinfo lists them, as mount flags (a remount must keep them).
MOUNT_OPTIONS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
                 "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}
SCRATCH = ("/tmp", "/dev/shm")
SLEEP = shutil.which("sleep", path="/usr/bin:/bin")  # the init of every world
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 24, 38, 22, 2
# Refused system calls (add_key, request_key, keyctl, memfd_create, memfd_secret, shmget, msgget, ptrace,
# process_vm_readv, process_vm_writev, pidfd_getfd), by architecture: its seccomp audit code and its numbers.
REFUSED_CALLS = {
    "x86_64": (0xC000003E, (248, 249, 250, 319, 447, 29, 68, 101, 310, 311, 438)),
    "aarch64": (0xC00000B7, (217, 218, 219, 279, 447, 194, 186, 117, 270, 271, 438)),  # the generic table
    "riscv64": (0xC00000F3, (217, 218, 219, 279, 447, 194, 186, 117, 270, 271, 438)),
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


def spawn_init(own_namespace):
    """pid 1 of a new PID namespace: the init of the next submission's world. Every fork the
    caller makes until it returns to `own_namespace` (setns) is born in it."""
    _check(_libc.unshare(CLONE_NEWPID), "unshare")
    try:
        null_stdio = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0),
                      (os.POSIX_SPAWN_DUP2, 0, 1), (os.POSIX_SPAWN_DUP2, 0, 2)]
        return os.posix_spawn(SLEEP, ["sleep", "infinity"], {}, file_actions=null_stdio)
    except BaseException:
        leave_namespace(own_namespace)
        raise


def leave_namespace(own_namespace):
    """Let the caller's next forks be born in its own PID namespace again."""
    _check(_libc.setns(own_namespace, CLONE_NEWPID), "setns")


def student(channel, setup, serve, workdir):
    """Run in the zygote's fork for one submission: make the world, then serve; never returns."""
    try:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the zygote may be killed
        limits = setup["limits"]
        if setup["isolated"]:
            # When the box's memory cgroup is full, the kernel kills the world's processes (this one
            # and what it starts inherit the score) before the zygote that outlives them. Written
            # while /proc is still writable; raising one's own score needs no privilege.
            with open("/proc/self/oom_score_adj", "w") as score:
                score.write("1000")
            _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare")
            _mount(None, "/", None, MS_REC | MS_PRIVATE)
            _mount_scratch(f"size={limits['scratch_mb']}m,mode=1777,nr_inodes=10000", setup["python"])
            _read_only_but_scratch()
            _mask_processes_outside()
        _become_student(limits, setup["isolated"], workdir, channel.fileno())
        serve(channel)
    finally:
        os._exit(0)


def end_weak(student_pid, workdir):
    """Weak mode: what the student's process group left, and its scratch folder."""
    _kill_group(student_pid)
    shutil.rmtree(workdir, ignore_errors=True)


def exit_code(status):
    """How a waited-for process ended, as JSON-able data."""
    if os.WIFSIGNALED(status):
        return {"signal": signal.Signals(os.WTERMSIG(status)).name}
    return {"exit": os.WEXITSTATUS(status)}


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
    """Hide every process but this one (the box's: bubblewrap, zygote, and the world's init)
    behind an empty read-only folder: /proc is the box's, and the new PID namespace alone does not
    hide their environment, command line or descriptors."""
    me = os.readlink("/proc/self")  # this process's pid as the box's /proc numbers it
    pids = [entry for entry in os.listdir("/proc") if entry.isdigit() and entry != me]
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
    for tid in threads.difference(pids, [me]):
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


def own_pid_namespace(control):
    """Go on as pid 1 of a new PID namespace. bubblewrap's --disable-userns puts the zygote in a user
    namespace nested below the one that owns the box's PID namespace, and a process may return to
    its own PID namespace after making a world's (setns) only where its user namespace owns it. The
    calling process stays behind, waits, and ends as its child does."""
    _check(_libc.unshare(CLONE_NEWPID), "unshare")
    child = os.fork()
    if child:
        control.close()
        _, status = os.waitpid(child, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def processes():
    """The pids /proc lists (the box's numbering)."""
    return {int(entry) for entry in os.listdir("/proc") if entry.isdigit()}


def stragglers(box):
    """Processes in the sandbox other than the box's own (`box`: processes() at its start)."""
    return processes() - box


def kill_stragglers(box):
    for pid in stragglers(box):
        try:
            with open(f"/proc/{pid}/status") as status:  # its pid as the caller's namespace numbers it
                numbers = next(line for line in status if line.startswith("NSpid:")).split()
            os.kill(int(numbers[2]), signal.SIGKILL)
        except (OSError, StopIteration, IndexError, ValueError):
            pass
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                break
        except ChildProcessError:
            break
