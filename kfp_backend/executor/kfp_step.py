"""`kfp-step`: the C wrapper that starts a step (private paths, launch record, exit status) in one small process.

Its source, its build on first use when a C compiler is present (into `$XDG_CACHE_HOME/kfp-backend/`),
and its checks. Its options and why it exists: docs/execution.md ("`kfp-step`").
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <grp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SETUP_FAILED 125

static int record(int rc) {
    dprintf(1, "%d\n", rc);
    return rc;
}

static int fail(const char *what, const char *path) {
    int saved = errno;
    dprintf(2, "kfp-backend: %s%s%s: %s\n", what, path ? " " : "", path ? path : "", strerror(saved));
    return record(SETUP_FAILED);
}

static int make_dirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        int bad = mkdir(path, 0755) != 0 && errno != EEXIST;
        *p = '/';
        if (bad) return -1;
    }
    return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static void ignore(int sig) { (void)sig; }

static int read_file(const char *path, char *buffer, size_t size) {
    FILE *file = fopen(path, "r");
    if (file == NULL) return -1;
    size_t n = fread(buffer, 1, size - 1, file);
    fclose(file);
    buffer[n] = 0;
    return 0;
}

static int write_record(void) {
    char stat_line[4096], boot_id[128] = "unknown", line[512];
    if (read_file("/proc/self/stat", stat_line, sizeof stat_line) != 0) return -1;
    char *fields = strrchr(stat_line, ')');
    if (fields == NULL) return -1;
    char *saved = NULL, *field = strtok_r(fields + 1, " ", &saved);
    for (int n = 0; field != NULL && n < 19; n++) field = strtok_r(NULL, " ", &saved);
    if (field == NULL) return -1;
    if (read_file("/proc/sys/kernel/random/boot_id", boot_id, sizeof boot_id) == 0) {
        boot_id[strcspn(boot_id, "\n")] = 0;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int length = snprintf(line, sizeof line, "%d %s %s %ld.%06ld\n", (int)getpid(), field, boot_id,
                          (long)now.tv_sec, now.tv_nsec / 1000);
    if (length <= 0 || length >= (int)sizeof line) return -1;
    return write(1, line, length) == length ? 0 : -1;
}

static int wrapper(int argc, char **argv) {
    const char *setup = "could not set up the step's private paths";
    char *cwd = NULL;
    int ignore_term = 0, exec_in_place = 0;
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (!strcmp(argv[i], "-r")) {
            if (write_record() != 0) return fail("kfp-step: cannot write the launch record", NULL);
        } else if (!strcmp(argv[i], "-D") && i + 1 < argc) {
            if (make_dirs(argv[++i]) != 0) return fail("cannot create", argv[i]);
        } else if (!strcmp(argv[i], "-m")) {
            if (unshare(CLONE_NEWNS) != 0) return fail(setup, "(unshare)");
            if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return fail(setup, "(private /)");
        } else if (!strcmp(argv[i], "-b") && i + 2 < argc) {
            if (mount(argv[i + 1], argv[i + 2], NULL, MS_BIND, NULL) != 0) return fail(setup, argv[i + 2]);
            i += 2;
        } else if (!strcmp(argv[i], "-C") && i + 1 < argc) {
            cwd = argv[++i];
        } else if (!strcmp(argv[i], "-I")) {
            ignore_term = 1;
        } else if (!strcmp(argv[i], "-g") && i + 1 < argc) {
            gid_t gid = (gid_t)strtoul(argv[++i], NULL, 10);
            if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0) {
                return fail("kfp-step: cannot become group", argv[i]);
            }
        } else if (!strcmp(argv[i], "-u") && i + 1 < argc) {
            uid_t uid = (uid_t)strtoul(argv[++i], NULL, 10);
            if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || setresuid(uid, uid, uid) != 0) {
                return fail("kfp-step: cannot become user", argv[i]);
            }
        } else if (!strcmp(argv[i], "-x")) {
            exec_in_place = 1;
        } else {
            errno = EINVAL;
            return fail("kfp-step: bad argument", argv[i]);
        }
    }
    if (i >= argc) {
        errno = EINVAL;
        return fail("kfp-step: no command", NULL);
    }
    if (cwd != NULL && chdir(cwd) != 0 && (make_dirs(cwd) != 0 || chdir(cwd) != 0)) return fail("cannot enter", cwd);
    if (exec_in_place) {
        signal(SIGTERM, SIG_DFL);
        execvp(argv[i], argv + i);
        int missing = errno == ENOENT;
        dprintf(2, "kfp-step: %s: %s\n", argv[i], missing ? "not found" : strerror(errno));
        _exit(missing ? 127 : 126);
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = ignore; /* a handler, not SIG_IGN: exec resets it to the default in the step */
    sigaction(SIGTERM, &action, NULL);
    pid_t child = fork();
    if (child < 0) return fail("kfp-step: fork", NULL);
    if (child == 0) {
        dup2(2, 1);
        if (ignore_term) signal(SIGTERM, SIG_IGN);
        execvp(argv[i], argv + i);
        int missing = errno == ENOENT;
        dprintf(2, "kfp-step: %s: %s\n", argv[i], missing ? "not found" : strerror(errno));
        _exit(missing ? 127 : 126);
    }
    int status;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) return fail("kfp-step: wait", NULL);
    }
    return record(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

/* --spawner: start wrappers on request, as children of our parent (CLONE_PARENT): the server gets
   their exit status and reaps them as if it had spawned them itself, without waiting for each one to
   be scheduled. A request on stdin: "<length>\n" then <length> bytes of NUL-terminated fields:
   stdout path, stderr path, argument count, arguments..., environment count, environment...
   The reply on stdout: "<pid>\n", or "-<errno>\n". Ends at end of input. */
static int spawner(void) {
    extern char **environ;
    for (;;) {
        size_t length;
        if (scanf("%zu", &length) != 1 || getchar() != '\n') return 0;
        char *data = malloc(length + 1);
        if (data == NULL || fread(data, 1, length, stdin) != length) return 1;
        data[length] = 0;
        char *fields[8192];
        size_t count = 0;
        for (size_t at = 0; at < length && count < 8192; at += strlen(data + at) + 1) fields[count++] = data + at;
        long reply = -EINVAL;
        long nargs = count > 2 ? strtol(fields[2], NULL, 10) : -1;
        long nenv = nargs >= 1 && (size_t)(3 + nargs) < count ? strtol(fields[3 + nargs], NULL, 10) : -1;
        if (nenv >= 0 && (size_t)(4 + nargs + nenv) == count) {
            char **args = calloc(nargs + 1, sizeof *args), **env = calloc(nenv + 1, sizeof *env);
            for (long n = 0; n < nargs; n++) args[n] = fields[3 + n];
            for (long n = 0; n < nenv; n++) env[n] = fields[4 + nargs + n];
            long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, NULL, NULL, 0);
            if (pid == 0) {
                setsid();
                int in = open("/dev/null", O_RDONLY), out = open(fields[0], O_WRONLY | O_CREAT | O_TRUNC, 0644);
                int err = open(fields[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
                if (in < 0 || out < 0 || err < 0) _exit(SETUP_FAILED);
                dup2(in, 0);
                dup2(out, 1);
                dup2(err, 2);
                if (in > 2) close(in);
                if (out > 2) close(out);
                if (err > 2) close(err);
                environ = env;
                _exit(wrapper((int)nargs, args));
            }
            reply = pid < 0 ? -errno : pid;
            free(args);
            free(env);
        }
        free(data);
        printf("%ld\n", reply);
        fflush(stdout);
    }
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--spawner")) return spawner();
    return wrapper(argc, argv);
}
"""

_lock = threading.Lock()
_built: list[str | None] = []  # [] = not tried yet; [None] = not available; [path]


def step_helper() -> str | None:
    """The path of a working `kfp-step`, built on first use; None when it cannot be had here."""
    with _lock:
        if not _built:
            try:
                _built.append(_build())
            except Exception as exc:  # whatever goes wrong, the shell wrapper does the job
                log.info("kfp-step helper not available (%s); steps use the shell wrapper", exc)
                _built.append(None)
        return _built[0]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    directory = Path(base) / "kfp-backend"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = directory.stat()
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RuntimeError(f"{directory} is not this user's own directory")
    return directory


def _build() -> str:
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    directory = _cache_dir()
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:16]
    binary = directory / f"kfp-step-{digest}"
    if not binary.is_file():
        if compiler is None:
            raise RuntimeError("no C compiler (cc, gcc or clang) on PATH")
        with tempfile.TemporaryDirectory(dir=directory) as scratch:
            source = Path(scratch) / "kfp-step.c"
            source.write_text(SOURCE)
            output = Path(scratch) / "kfp-step"
            # Static when the C library allows it: a static binary starts faster.
            for flags in (["-static"], []):
                done = subprocess.run(
                    [compiler, "-O2", *flags, "-o", str(output), str(source)],
                    capture_output=True, text=True, timeout=120, check=False,
                )
                if done.returncode == 0:
                    break
            else:
                raise RuntimeError(f"{compiler} failed: {done.stderr.strip()[:500]}")
            os.replace(output, binary)
    _check(str(binary))
    return str(binary)


def _check(binary: str) -> None:
    """Run it once: exit status record, output, working directory, and a launch record that says what
    the launcher's own would (pid, start time as /proc shows it to the step, boot id, wall clock)."""
    with tempfile.TemporaryDirectory(prefix="kfp-step-check-") as scratch:
        cwd = os.path.join(scratch, "a", "b")
        before = time.time()
        proc = subprocess.Popen(
            [binary, "-r", "-D", os.path.join(scratch, "c"), "-C", cwd, "--", "sh", "-c",
             'echo out; cat /proc/$PPID/stat >&2; test "$(pwd)" = "$1" && exit 3', "x", cwd],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        stdout, stderr = proc.communicate(timeout=30)
        after = time.time()
        lines = stdout.splitlines()
        if proc.returncode != 3 or len(lines) != 2 or lines[1] != "3" or not stderr.startswith("out\n"):
            raise RuntimeError(f"kfp-step check failed: {proc.returncode} {stdout!r} {stderr!r}")
        parent_stat = stderr[len("out\n"):]
        ticks = parent_stat[parent_stat.rindex(")") + 2 :].split()[19]
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pid, recorded_ticks, recorded_boot, started_at = lines[0].split()
        if (int(pid), recorded_ticks, recorded_boot) != (proc.pid, ticks, boot_id) or not (
            before - 1 <= float(started_at) <= after + 1
        ) or not os.path.isdir(os.path.join(scratch, "c")):
            raise RuntimeError(f"kfp-step check failed: launch record {lines[0]!r}")


_ns_checked: list[bool] = []


def namespace_works(binary: str) -> bool:
    """`kfp-step -m -b` works here (a private bind mount that does not leak out). Checked once."""
    with _lock:
        if not _ns_checked:
            _ns_checked.append(_check_namespace(binary))
        return _ns_checked[0]


def _check_namespace(binary: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="kfp-step-ns-check-") as scratch:
        source, target = Path(scratch, "a"), Path(scratch, "b")
        source.mkdir()
        target.mkdir()
        (source / "marker").touch()
        try:
            done = subprocess.run(
                [binary, "-m", "-b", str(source), str(target), "--", "sh", "-c", 'test -e "$1/marker"', "x",
                 str(target)],
                capture_output=True, text=True, timeout=30, check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            log.info("kfp-step -m failed: %s", exc)
            return False
        if done.returncode != 0 or (target / "marker").exists():
            log.info("kfp-step -m does not work here: %s %s", done.returncode, done.stderr.strip())
            return False
    return True
