"""In-sandbox runner for untrusted Python programs (stdlib only, system interpreter).

The controller compiles this file once and starts it inside each bubblewrap sandbox as
``/usr/bin/python3 -I -S -B /runner.pyc <limits>`` (the bytecode comes in through bwrap
--ro-bind-data; ``-c <source>`` is the fallback), as the pid namespace's init. It refuses to run
anywhere else. It talks to the controller over stdin/stdout with length-prefixed frames (see
src/verify/code/protocol.ts for the other side):

  controller -> runner   b"P" program source        (once)
                         b"T" stdin of one test      (repeated)
  runner -> controller   b"K" ready                  (after start-up)
                         b"C" b"0" | b"1" + error     (program compiled or not)
                         b"R" result of one test      (exit status, times, raw stdout, stderr)

Why a warmed runner: starting bwrap + python costs ~25 ms, a fork of this process ~1 ms, so one
sandbox per program and one forked child per test. The runner never sees expected outputs:
it receives inputs and returns raw outputs, and the controller compares them outside.

Each child gets the program's stdin from a memfd (no pipe dead-locks, EOF for programs that block
on stdin), stdout/stderr through capped pipes, its own session, CPU rlimit, and a fresh
``__main__`` module. The runner is the sandbox's pid 1 (bwrap --as-pid-1): the program cannot
signal it, and after every test it sends SIGKILL to every other process in the namespace
(kill(-1)) and reaps them, so daemonized leftovers never outlive their test.
"""

import os
import select
import signal
import struct
import sys
import time
import resource
import builtins

_exit = os._exit
IN_FD, OUT_FD = 0, 1
MLE_EXIT = 113  # a child that died of MemoryError exits with this; only ever a hint (untrusted)
HEADER = struct.Struct(">iiBBBIIIII")
READ_CHUNK = 1 << 16
MAX_FD = 0x7FFFFFFF  # closerange uses close_range(2): cost is per open fd, not per number


def parse_limits(text):
    out = {}
    for part in text.split(","):
        if not part:
            continue
        key, _, value = part.partition("=")
        out[key] = int(value)
    return out


LIMITS = parse_limits(sys.argv[1] if len(sys.argv) > 1 else "")
TIME_MS = LIMITS.get("time_ms", 6000)
AS_BYTES = LIMITS.get("as_bytes", 1 << 30)
NPROC = LIMITS.get("nproc", 16)
FSIZE = LIMITS.get("fsize", 16 << 20)
NOFILE = LIMITS.get("nofile", 64)
STDOUT_CAP = LIMITS.get("stdout_cap", 8 << 20)
STDERR_CAP = LIMITS.get("stderr_cap", 1 << 20)
STDERR_KEEP = LIMITS.get("stderr_keep", 4096)
WORKDIR = "/tmp"


def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def send(kind, payload=b""):
    write_all(OUT_FD, kind + struct.pack(">I", len(payload)) + payload)


def read_exact(n):
    chunks = []
    while n > 0:
        chunk = os.read(IN_FD, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv():
    head = read_exact(5)
    if head is None:
        return None, None
    (length,) = struct.unpack(">I", head[1:])
    payload = read_exact(length)
    if payload is None:
        return None, None
    return head[:1], payload


def set_limit(which, soft, hard=None):
    try:
        resource.setrlimit(which, (soft, soft if hard is None else hard))
    except (ValueError, OSError):
        pass


def harden_runner():
    # Non-dumpable: a program (same uid) can then neither ptrace the runner nor reopen its
    # protocol pipes through /proc/<runner>/fd. Children switch it back on (see child_main).
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
        return libc
    except Exception:  # pragma: no cover - ctypes missing is survivable
        return None


def apply_static_limits():
    # Inherited by every child. RLIMIT_NPROC counts tasks of this uid in this user namespace
    # (the runner, the child): the margin of 2 keeps the child's own budget at NPROC.
    set_limit(resource.RLIMIT_AS, AS_BYTES)
    set_limit(resource.RLIMIT_NPROC, NPROC + 2)
    set_limit(resource.RLIMIT_FSIZE, FSIZE)
    set_limit(resource.RLIMIT_NOFILE, NOFILE)
    set_limit(resource.RLIMIT_CORE, 0)
    set_limit(resource.RLIMIT_MEMLOCK, 0)
    set_limit(resource.RLIMIT_MSGQUEUE, 0)


def kill_everything_else():
    # The runner is the pid namespace's init (bwrap --as-pid-1): kill(-1) reaches every other
    # process in the sandbox — forked helpers, daemons, thread bombs all go. Outside its own pid
    # namespace kill(-1) would hit every process of the user on the host: never, whatever happens.
    if os.getpid() != 1:
        return
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass


def reap_all(limit_s=2.0):
    # As init, the runner inherits every orphan; zombies still count against RLIMIT_NPROC, so
    # the next test must not start before they are all collected.
    end = time.monotonic() + limit_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid != 0:
            continue
        if time.monotonic() > end:
            return False
        kill_everything_else()  # anything forked while the previous kill was in flight
        time.sleep(0.001)


def clean_workdir(limit_s=0.5):
    # Tests of one program should not see each other's files. Bounded in time: a program that made
    # a million files only slows its own later tests (the tmpfs dies with the sandbox anyway).
    try:
        if not os.listdir(WORKDIR):
            return
    except OSError:
        return
    end = time.monotonic() + limit_s
    for root, dirs, files in os.walk(WORKDIR, topdown=True):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o700)
            except OSError:
                pass
        if time.monotonic() > end:
            return
    for root, dirs, files in os.walk(WORKDIR, topdown=False):
        if time.monotonic() > end:
            return
        for name in files:
            try:
                os.unlink(os.path.join(root, name))
            except OSError:
                pass
        for name in dirs:
            path = os.path.join(root, name)
            try:
                if os.path.islink(path):
                    os.unlink(path)
                else:
                    os.rmdir(path)
            except OSError:
                pass


def exit_status_of(exc):
    # Same meaning as the interpreter's own handling of an uncaught SystemExit.
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        sys.stderr.write(str(code) + "\n")
    except Exception:
        pass
    return 1


def child_main(code, libc, stdin_fd, out_w, err_w):
    status = 1
    try:
        os.setsid()
        os.dup2(stdin_fd, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, MAX_FD)
        if libc is not None:
            libc.prctl(4, 1, 0, 0, 0)  # dumpable again, so /dev/stdin -> /proc/self/fd/0 works
        cpu = (TIME_MS + 999) // 1000 + 1
        set_limit(resource.RLIMIT_CPU, cpu, cpu + 1)
        os.chdir(WORKDIR)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.argv = ["main.py"]
        main = type(sys)("__main__")
        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main
        status = 0
        try:
            exec(code, main.__dict__)
        except SystemExit as exc:
            status = exit_status_of(exc)
        except MemoryError:
            try:
                os.write(2, b"MemoryError\n")
            except OSError:
                pass
            status = MLE_EXIT
        except BaseException:
            kind, value, tb = sys.exc_info()
            tb = tb.tb_next if tb is not None else None  # hide the runner's own frame
            try:
                value = value.with_traceback(tb)
            except Exception:
                pass
            sys.excepthook(kind, value, tb)
            status = 1
        threading = sys.modules.get("threading")
        if threading is not None:
            try:
                threading._shutdown()  # what interpreter exit does: join non-daemon threads
            except BaseException:
                pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                if status == 0:
                    status = 120  # the interpreter's code for a failed final flush
    finally:
        _exit(status)


def run_test(code, libc, stdin_bytes):
    stdin_fd = os.memfd_create("stdin", 0)
    write_all(stdin_fd, stdin_bytes)
    os.lseek(stdin_fd, 0, os.SEEK_SET)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        child_main(code, libc, stdin_fd, out_w, err_w)
    os.close(out_w)
    os.close(err_w)
    os.close(stdin_fd)
    pidfd = os.pidfd_open(pid)

    poller = select.poll()
    for fd in (out_r, err_r, pidfd):
        poller.register(fd, select.POLLIN)
    out = bytearray()
    err = bytearray()
    err_total = 0
    timed_out = False
    ole = 0
    exited = False
    open_pipes = 2
    deadline = started + TIME_MS / 1000.0

    def read_into(fd):
        nonlocal ole, err_total, open_pipes
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        if not data:
            poller.unregister(fd)
            open_pipes -= 1
            return
        if fd == out_r:
            out.extend(data)
            if len(out) > STDOUT_CAP:
                del out[STDOUT_CAP:]
                ole = 1
        else:
            err_total += len(data)
            err.extend(data)
            if len(err) > STDERR_KEEP * 2:
                del err[: len(err) - STDERR_KEEP]
            if err_total > STDERR_CAP:
                ole = 2

    while not exited and not ole:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        for fd, _ev in poller.poll(max(1, int(remaining * 1000))):
            if fd == pidfd:
                exited = True
            else:
                read_into(fd)

    wall = time.monotonic() - started
    kill_everything_else()  # the child if still running, and whatever it left behind
    _, wait_status, usage = os.wait4(pid, 0)
    reap_all()
    poller.unregister(pidfd)
    os.close(pidfd)
    # Every writer is dead now: drain what is left in the pipes (bounded by the caps).
    drain_until = time.monotonic() + 0.5
    while open_pipes > 0 and not ole and time.monotonic() < drain_until:
        events = poller.poll(100)
        if not events:
            continue
        for fd, _ev in events:
            read_into(fd)
    os.close(out_r)
    os.close(err_r)
    clean_workdir()

    exit_code = os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else -1
    sig = os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else 0
    mle = 1 if exit_code == MLE_EXIT else 0
    cpu_us = int((usage.ru_utime + usage.ru_stime) * 1e6)
    tail = bytes(err[-STDERR_KEEP:])
    header = HEADER.pack(
        exit_code,
        sig,
        1 if timed_out else 0,
        ole,
        mle,
        min(int(wall * 1e6), 0xFFFFFFFF),
        min(cpu_us, 0xFFFFFFFF),
        min(usage.ru_maxrss, 0xFFFFFFFF),
        len(out),
        len(tail),
    )
    send(b"R", header + bytes(out) + tail)


class Quitter:
    # `python -S` skips site.py, which is what normally defines exit() and quit().
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "Use %s() or Ctrl-D (i.e. EOF) to exit" % self.name

    def __call__(self, code=None):
        try:
            sys.stdin.close()
        except Exception:
            pass
        raise SystemExit(code)


def main():
    if os.getpid() != 1:
        # Only ever run as the init of a fresh pid namespace (bwrap --unshare-pid --as-pid-1).
        sys.stderr.write("promptcot sandbox runner: refusing to run outside its own pid namespace\n")
        _exit(2)
    builtins.exit = Quitter("exit")
    builtins.quit = Quitter("quit")
    # Whatever the controller's process leaked to us (fds without close-on-exec) must not reach the
    # program: keep only the protocol pipes and stderr.
    os.closerange(3, MAX_FD)
    libc = harden_runner()
    apply_static_limits()
    # The runner itself never needs SIGPIPE/SIGINT: a dead controller shows up as EOF/EPIPE.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    send(b"K")
    code = None
    while True:
        kind, payload = recv()
        if kind is None:
            break
        if kind == b"P":
            try:
                code = compile(payload.decode("utf-8", "surrogateescape"), "main.py", "exec")
                send(b"C", b"0")
            except BaseException as exc:  # SyntaxError, ValueError (NUL bytes), RecursionError...
                code = None
                message = ("%s: %s" % (type(exc).__name__, exc))[:4000]
                send(b"C", b"1" + message.encode("utf-8", "replace"))
        elif kind == b"T":
            if code is None:
                break
            run_test(code, libc, payload)
        else:
            break
    kill_everything_else()
    _exit(0)  # pid 1 exiting: the kernel kills whatever is left in the namespace


if __name__ == "__main__":
    main()
