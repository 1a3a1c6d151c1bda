"""Starting a command's process: its own session, stdin /dev/null, output to a log descriptor.

A plain command (one program and its arguments, nothing the shell would interpret) starts
without the shell; anything else goes through `/bin/sh -c` (`cmd /c` on Windows). On Linux the
process is started with os.posix_spawn (but for a job with a cwd of its own), elsewhere with
subprocess.Popen.

Which shell, and the Windows command line, are pure functions of the platform and environment
they are given (shell_argv, windows_command_line), so that tests on Linux check the Windows
choices too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

IS_WINDOWS = sys.platform == "win32"
IS_LINUX = sys.platform.startswith("linux")

# A word the shell passes through untouched: no quoting, expansion, globbing, redirection,
# separator, assignment or tilde can hide in it.
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@%+,./:-]+")
# Shell builtins and keywords behave differently from (or have no) programs of the same name.
_SHELL_WORD_TEXT = (
    "! . : [ [[ ]] { } alias bg break builtin case cd command continue do done echo elif else "
    "esac eval exec exit export false fc fg fi for function getopts hash if in jobs kill let "
    "local printf pwd read readonly return select set shift source test then time times trap "
    "true type typeset ulimit umask unalias unset until wait while"
)
SHELL_WORDS = frozenset(_SHELL_WORD_TEXT.split())


def plain_argv(command: str) -> list[str] | None:
    """The argv of a command that `sh -c` would run as one plain program, or None.

    Starting such a command without the shell saves a process and gives the same result: the
    shell would only have searched PATH and exec'd it. Anything else goes through the shell."""
    words = command.split(" ")
    if words[0] in SHELL_WORDS or not all(_PLAIN_WORD.fullmatch(word) for word in words):
        return None
    return words


def shell_argv(
    command: str, platform: str = sys.platform, environ: Mapping[str, str] | None = None
) -> list[str]:
    """The platform shell running COMMAND (SPEC §2: `sh -c` / `cmd /c`): /bin/sh -c on POSIX;
    on Windows %ComSpec% /c, else %SystemRoot%\\System32\\cmd.exe /c, as subprocess's
    shell=True chooses it. FileNotFoundError on Windows when neither variable says where
    cmd.exe is. `environ` defaults to os.environ."""
    if platform != "win32":
        return ["/bin/sh", "-c", command]
    import ntpath

    environ = os.environ if environ is None else environ
    # Windows variable names are case-insensitive (os.environ there upper-cases them).
    upper = {name.upper(): value for name, value in environ.items()}
    comspec = upper.get("COMSPEC")
    if not comspec:
        comspec = ntpath.join(upper.get("SYSTEMROOT", ""), "System32", "cmd.exe")
        if not ntpath.isabs(comspec):
            raise FileNotFoundError("shell not found: neither %ComSpec% nor %SystemRoot% is set")
    return [comspec, "/c", command]


def windows_command_line(argv: list[str]) -> str:
    """The command line CreateProcess gets for shell_argv's Windows argv: the command in one
    pair of quotes that cmd /c strips, exactly as subprocess's shell=True writes it (not
    list2cmdline's quoting, which cmd does not understand)."""
    comspec, switch, command = argv
    return f'{comspec} {switch} "{command}"'


def windows_popen_options(argv: list[str]) -> dict[str, Any]:
    """Popen's options for a command on Windows, those subprocess's shell=True would add
    (cmd.exe by its full path, no console window) and a process group of its own, which a
    Ctrl-Break or `taskkill /T` reaches as a whole."""
    import ntpath

    options: dict[str, Any] = {
        # The value of subprocess.CREATE_NEW_PROCESS_GROUP, defined on Windows only.
        "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200),
        "executable": argv[0] if ntpath.isabs(argv[0]) else None,
    }
    if hasattr(subprocess, "STARTUPINFO"):  # Windows: shell=True's hidden window
        options["startupinfo"] = subprocess.STARTUPINFO(
            dwFlags=subprocess.STARTF_USESHOWWINDOW, wShowWindow=subprocess.SW_HIDE
        )
    return options


def spawn(
    command: str,
    extra_env: Mapping[str, str],
    log_fd: int,
    cwd: str | None = None,
    job_env: Mapping[str, str] | None = None,
) -> tuple[subprocess.Popen | SpawnedChild, bool]:
    """Start the command, leading a session of its own (so a kill of its process group reaches
    everything it starts), in folder `cwd` (None: this process's), with `job_env` and then
    `extra_env` (which wins) added to this process's environment, and stdout and stderr on
    `log_fd`. Returns the process and whether it was started without the shell.
    Raises OSError if it could not be started at all; its `filename` is `cwd` when that folder
    is the reason (see folder_error)."""
    if cwd is not None:
        check_folder(cwd)
    if IS_WINDOWS:
        env = _popen_env(extra_env, job_env)
        argv = shell_argv(command)
        common = {"stdin": _stdin(), "stdout": log_fd, "stderr": subprocess.STDOUT}
        return subprocess.Popen(
            windows_command_line(argv), cwd=cwd, env=env, **windows_popen_options(argv), **common
        ), False
    # No preexec_fn, which would force fork() instead of vfork() and cut the spawn rate by
    # about three. A dead worker's command is killed by the supervisor (a child subreaper) or,
    # if the whole pool died, by the worker that rescues the job (see process_groups).
    # os.posix_spawn cannot change folder (Python exposes no chdir file action; glibc's is a
    # non-standard extension, and a failed one could not be told from a missing program): a
    # job with a cwd starts through Popen, which does the chdir in the child and says so when
    # it fails.
    start = _posix_spawn if USE_POSIX_SPAWN and cwd is None else _popen
    argv = plain_argv(command)
    if argv is not None:
        try:
            return start(argv, extra_env, log_fd, cwd, job_env), True
        except OSError as exc:
            if folder_error(exc, cwd):
                raise  # the shell could not start there either
            # Not found, not executable, a script without #!: the shell says how it fails.
    return start(shell_argv(command), extra_env, log_fd, cwd, job_env), False


def check_folder(path: str) -> None:
    """Raise OSError (with `filename` set to `path`) unless a command can be started in the
    folder `path`. Checked before spawning so that every way of starting fails alike, naming
    the folder; Popen's own chdir in the child still catches a folder removed meanwhile."""
    mode = os.stat(path).st_mode  # FileNotFoundError, PermissionError … name the path
    if not stat.S_ISDIR(mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
    if not os.access(path, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)


def folder_error(exc: OSError, cwd: str | None) -> bool:
    """Whether spawn's OSError is about the folder `cwd` (not the program)."""
    return cwd is not None and exc.filename == cwd


# Opened once, on the first spawn, and never closed: every command's stdin.
_devnull: int | None = None


def _stdin() -> int:
    global _devnull
    if _devnull is None:
        _devnull = os.open(os.devnull, os.O_RDONLY)
    return _devnull


# os.posix_spawn (Linux): glibc starts the child with clone(CLONE_VFORK) in C, where Popen
# runs a few hundred lines of Python and opens an error pipe per spawn: 25-35 µs less worker
# time per spawn here. Popen elsewhere (older macOS lacks the setsid attribute).
USE_POSIX_SPAWN = IS_LINUX and hasattr(os, "posix_spawnp")
# Python ignores these two at start-up, and an ignored signal stays ignored across exec:
# commands get the default back, as Popen's restore_signals gives them.
_RESTORED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name)
)
# This process's environment, encoded once on the first spawn (dict(os.environb) costs about
# 14 µs with 35 variables) and never changed afterwards: each spawn adds the job's variables
# to a copy, under 1 µs (0.2 µs more than updating it in place, which carried one job's
# variables over into the next spawn). Nothing in a worker changes its environment later.
_base_env: dict[bytes, bytes] | None = None


def _posix_spawn(
    argv: list[str],
    extra_env: Mapping[str, str],
    log_fd: int,
    cwd: None = None,
    job_env: Mapping[str, str] | None = None,
) -> SpawnedChild:
    global _base_env
    if _base_env is None:
        _base_env = dict(os.environb)
    env = _base_env.copy()
    for variables in (job_env or {}, extra_env):  # the worker's own win
        for name, value in variables.items():
            env[os.fsencode(name)] = os.fsencode(value)
    # Nothing else is passed on: every descriptor the worker opens is close-on-exec (PEP 446,
    # SQLite's and libpq's own), and the worker marks those it inherited (close_inherited_fds).
    actions = [
        (os.POSIX_SPAWN_DUP2, _stdin(), 0),
        (os.POSIX_SPAWN_DUP2, log_fd, 1),
        (os.POSIX_SPAWN_DUP2, log_fd, 2),
    ]
    pid = os.posix_spawnp(
        argv[0], argv, env, file_actions=actions, setsid=True, setsigdef=_RESTORED_SIGNALS
    )
    return SpawnedChild(pid)


def _popen(
    argv: list[str],
    extra_env: Mapping[str, str],
    log_fd: int,
    cwd: str | None = None,
    job_env: Mapping[str, str] | None = None,
) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        stdin=_stdin(),
        stdout=log_fd,
        stderr=subprocess.STDOUT,
        close_fds=True,
        start_new_session=True,
        cwd=cwd,
        env=_popen_env(extra_env, job_env),
    )


def _popen_env(
    extra_env: Mapping[str, str], job_env: Mapping[str, str] | None
) -> dict[str, str] | None:
    """Popen's env= for a command: None (inherit) when only the worker's own variables are
    added, a copy with the job's variables otherwise."""
    # One command at a time: the worker's variables (the same names every run) go into its
    # own environment, which the child inherits as is (env= would re-encode every variable on
    # every spawn).
    os.environ.update(extra_env)
    if not job_env:
        return None
    # A job's own variables must not stay behind for the next job: a copy for this child.
    return {**os.environ, **job_env, **extra_env}


class SpawnedChild:
    """The part of Popen the runner uses, for a child started with os.posix_spawn."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """Reap the child if it has exited; its exit code, or None while it runs."""
        if self.returncode is None:
            self._reap(os.WNOHANG)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Reap the child, waiting up to `timeout` seconds (None: as long as it takes);
        raises subprocess.TimeoutExpired when it is still running then."""
        if timeout is None:
            while self.returncode is None:
                self._reap(0)
            return self.returncode
        # Only without pidfds (Linux before 5.3): poll, as Popen.wait(timeout) does.
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while self.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)
        return self.returncode

    def _reap(self, options: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, options)
        except ChildProcessError:
            self.returncode = 0  # reaped elsewhere: its status is gone (Popen says 0 too)
            return
        if pid:
            self.returncode = os.waitstatus_to_exitcode(status)


def close_inherited_fds() -> None:
    """Mark every descriptor above stderr close-on-exec, so commands started with posix_spawn
    inherit none of what this process inherited (Popen's close_fds did that per spawn)."""
    if not USE_POSIX_SPAWN:
        return
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2:
                with contextlib.suppress(OSError):
                    os.set_inheritable(fd, False)
