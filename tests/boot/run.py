"""run.py -- boots the installed units for real: a Debian tree (debootstrap,
cached in build/boot/rootfs) under systemd-nspawn, profd installed into it the
way a package would (make install DESTDIR, systemd-sysusers, systemd-tmpfiles,
daemon-reload, enable the sockets), then checks socket activation, READY,
the sandbox as the daemon sees it, the socket permissions and profd's
access check, an agent of another user, reload of /etc/profd.conf, restart
keeping the sockets, the watchdog killing a stuck profd, and a clean stop.

  python3 tests/boot/run.py [--root DIR]        (make test-boot; root only)

Needs systemd-container and mmdebstrap or debootstrap (scripts/deps.sh
installs them), and network for the first build of the tree: mmdebstrap
(apt's pipelined downloads, one dpkg run) when installed, else debootstrap
(one download at a time), the same minbase tree either way.  The tree is never written: the
container runs with --volatile=overlay.
Prints one line a check and ends with 'N passed, N failed'.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PACKAGES = ("systemd,systemd-sysv,dbus,python3,libevent-2.1-7,libmsgpackc2,"
            "libsqlite3-0,libprotobuf-c1,zlib1g,procps")
WATCHDOG_S = 4          # the test's drop-in: a stuck profd dies in 4 s
NOBODY = "65534"
# A user's profctl and agent look in $XDG_RUNTIME_DIR or /tmp/profd-UID
# unless told: the system profd's directory is named for them.
AS_NOBODY = ["env", "PROFD_RUNTIME_DIR=/run/profd", "setpriv",
             "--reuid=" + NOBODY, "--regid=" + NOBODY]


class Fail(Exception):
    pass


def sh(args, timeout=120, ok=True, **kw):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=timeout, **kw)
    if ok and r.returncode != 0:
        raise Fail("%s: exit %d: %s" % (" ".join(args), r.returncode,
                                        r.stdout[-1500:]))
    return r


def wait_until(pred, timeout, what, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise Fail("timed out after %ds waiting for %s" % (timeout, what))


def make_rootfs(path):
    if os.path.exists(os.path.join(path, "usr/bin/python3")):
        return
    tool = "mmdebstrap" if shutil.which("mmdebstrap") else "debootstrap"
    print("== %s bookworm into %s (once; a few minutes)" % (tool, path),
          flush=True)
    tmp = path + ".part"
    shutil.rmtree(tmp, ignore_errors=True)
    # mmdebstrap wants the target's parent to exist (a fresh clone has no
    # build/boot yet); debootstrap makes it.
    os.makedirs(os.path.dirname(os.path.abspath(tmp)), exist_ok=True)
    t0 = time.monotonic()
    # A tree built once and never written: dpkg need not fsync every file
    # (mmdebstrap: debootstrap has no such option).
    unsafe = ["--dpkgopt=force-unsafe-io"] if tool == "mmdebstrap" else []
    sh([tool, "--variant=minbase", "--include=" + PACKAGES] + unsafe +
       ["bookworm", tmp, "http://deb.debian.org/debian"], timeout=1800)
    os.rename(tmp, path)
    print("== tree built in %.0f s" % (time.monotonic() - t0), flush=True)


class Container:
    def __init__(self, rootfs, dest):
        self.log = open(os.path.join(dest, "..", "nspawn.log"), "w")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-q", "-D", rootfs, "--volatile=overlay",
             "--boot", "--register=no", "--keep-unit", "--console=pipe",
             "--bind-ro=%s:/mnt/profd-dest" % dest,
             "--bind-ro=%s:/mnt/workloads" % os.path.join(ROOT, "tests",
                                                          "workloads")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid1 = wait_until(self._pid1, 60, "the container's systemd")
        wait_until(lambda: self.run("systemctl", "is-system-running",
                                    ok=False).stdout.strip()
                   in ("running", "degraded"), 120, "the boot to finish", 0.5)

    def _pid1(self):
        if self.proc.poll() is not None:
            raise Fail("systemd-nspawn exited %d" % self.proc.returncode)
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % p) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid:
                return p
        return None

    def run(self, *args, ok=True, timeout=60):
        return sh(["nsenter", "-t", self.pid1, "-a", "--"] + list(args),
                  ok=ok, timeout=timeout)

    def shell(self, script, ok=True, timeout=60):
        return self.run("sh", "-c", script, ok=ok, timeout=timeout)

    def prop(self, unit, name):
        return self.run("systemctl", "show", "-P", name, unit).stdout.strip()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()     # nspawn halts the container
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.join(ROOT, "build", "boot",
                                                   "rootfs"))
    a = ap.parse_args()
    for tool in ("systemd-nspawn", "nsenter"):
        if not shutil.which(tool):
            sys.exit("run.py: %s not installed (scripts/deps.sh)" % tool)
    if not (shutil.which("mmdebstrap") or shutil.which("debootstrap")):
        sys.exit("run.py: mmdebstrap or debootstrap not installed "
                 "(scripts/deps.sh)")
    if os.geteuid() != 0:
        sys.exit("run.py: needs root (systemd-nspawn)")
    make_rootfs(a.root)
    tmp = tempfile.mkdtemp(prefix="profd-boot-")
    dest = os.path.join(tmp, "dest")
    # The container's python3 is Debian bookworm's 3.11, like /usr/bin/python3.
    sh(["make", "--no-print-directory", "-s", "-C", ROOT, "install",
        "PREFIX=/usr", "DESTDIR=" + dest, "PYTHON=/usr/bin/python3",
        "AGENTDIR=" + os.path.join(tmp, "agent")], timeout=900)
    passed = failed = 0
    c = None
    try:
        c = Container(a.root, dest)
        for name, fn in CHECKS:
            t0 = time.monotonic()
            try:
                fn(c)
                passed += 1
                print("PASS boot.%s (%.1fs)" % (name, time.monotonic() - t0),
                      flush=True)
            except Fail as e:
                failed += 1
                print("FAIL boot.%s (%.1fs): %s" % (name, time.monotonic() - t0,
                                                    e), flush=True)
                j = c.run("journalctl", "-b", "--no-pager", "-n", "25",
                          "-u", "profd*", ok=False).stdout
                print("  journal:\n    " + j.replace("\n", "\n    "))
                break       # each check builds on the one before
    except Fail as e:
        failed += 1
        print("FAIL boot.container: %s" % e)
    finally:
        if c is not None:
            c.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


# -- the checks, in order -----------------------------------------------------
def install_like_a_package(c):
    c.shell("cp -a /mnt/profd-dest/. / && systemd-sysusers && "
            "systemd-tmpfiles --create /usr/lib/tmpfiles.d/profd.conf")
    c.shell("mkdir -p /etc/systemd/system/profd.service.d && printf "
            "'[Service]\\nWatchdogSec=%ds\\n' "
            ">/etc/systemd/system/profd.service.d/test.conf" % WATCHDOG_S)
    c.run("systemctl", "daemon-reload")
    c.run("systemctl", "enable", "--now", "profd.socket",
          "profd-control.socket")
    for u in ("profd.socket", "profd-control.socket"):
        if c.prop(u, "ActiveState") != "active":
            raise Fail("%s is %s" % (u, c.prop(u, "ActiveState")))
    if c.prop("profd.service", "ActiveState") != "inactive":
        raise Fail("profd started before any connection")


def sockets_have_their_modes(c):
    out = c.run("stat", "-c", "%n %a %G", "/run/profd/agent.sock",
                "/run/profd/control.sock").stdout.split("\n")
    if not (out[0].endswith(" 666 profd") or out[0].endswith(" 666 root")):
        raise Fail("agent.sock: %s" % out[0])
    if not out[1].endswith(" 660 profd"):
        raise Fail("control.sock: %s" % out[1])


def first_connection_starts_profd_ready(c):
    c.run("profctl", "start", "--rate", "200")
    wait_until(lambda: c.prop("profd.service", "ActiveState") == "active",
               30, "profd.service active (READY=1)")
    if c.prop("profd.service", "Type") != "notify":
        raise Fail("not Type=notify")
    wd = c.prop("profd.service", "WatchdogUSec")
    if wd not in ("%ds" % WATCHDOG_S, str(WATCHDOG_S * 1000000)):
        raise Fail("WatchdogUSec=%s" % wd)


def daemon_runs_sandboxed(c):
    pid = c.prop("profd.service", "MainPID")
    st = dict(l.split(":", 1) for l in
              c.run("cat", "/proc/%s/status" % pid).stdout.splitlines()
              if ":" in l)
    uid = c.run("id", "-u", "profd").stdout.strip()
    want = {"Uid": uid, "CapEff": "0000000000000000", "CapBnd":
            "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"}
    for k, v in want.items():
        got = st.get(k, "").split()
        if not got or got[0] != v:
            raise Fail("/proc/%s/status %s: %r, want %s" % (pid, k, got, v))
    # The daemon's own view of the file system.
    ns = ["nsenter", "-t", pid, "-m", "--"]
    if c.run(*ns, "touch", "/etc/profd-was-here", ok=False).returncode == 0:
        raise Fail("profd's namespace can write /etc (ProtectSystem=)")
    if c.run(*ns, "ls", "/home", ok=False).stdout.strip():
        raise Fail("profd sees /home")
    c.run(*ns, "test", "-f", "/var/lib/profd/profd.db")
    own = c.run("stat", "-c", "%U %a", "/var/lib/profd").stdout.strip()
    if own != "profd 700":
        raise Fail("/var/lib/profd: %s" % own)


def control_needs_group_profd(c):
    # Not in group profd: the socket's mode keeps nobody out.
    r = c.run(*AS_NOBODY, "--clear-groups", "profctl", "status", ok=False)
    if r.returncode == 0 or "ermission denied" not in r.stdout:
        raise Fail("nobody used control.sock: %s" % r.stdout)
    # In group profd: profd answers, and (no allow list yet) says no.
    r = c.run(*AS_NOBODY, "--groups=" + profd_gid(c), "profctl", "status",
              ok=False)
    if r.returncode == 0 or "allow-" not in r.stdout:
        raise Fail("group profd, no allow list: %s" % r.stdout)


def profd_gid(c):
    return c.run("getent", "group", "profd").stdout.split(":")[2]


def agent_of_another_user_is_profiled(c):
    c.shell("%s --clear-groups python3 -m profagent run --service boot -- "
            "python3 /mnt/workloads/workload.py --seconds 600 "
            ">/dev/null 2>&1 &" % " ".join(AS_NOBODY))
    pids = wait_until(lambda: c.shell(
        "profctl status --format json | python3 -c 'import json,sys; "
        "print(\" \".join(str(a[\"pid\"]) for a in json.load(sys.stdin)"
        "[\"agents\"] if a[\"connected\"] and a[\"service\"] == "
        "\"boot\"))'").stdout.split(), 60, "the agent attached")
    # No ProtectProc=: the daemon, as user profd in its own mount
    # namespace, still sees the /proc/PID of another user's agent.
    main = c.prop("profd.service", "MainPID")
    uid = c.run("id", "-u", "profd").stdout.strip()
    c.run("nsenter", "-t", main, "-m", "-S", uid, "-G", uid, "--",
          "cat", "/proc/%s/stat" % pids[0])

    def samples():
        return int(c.shell("profctl show --service boot --format json 2>/dev/null | "
                           "python3 -c 'import json,sys; "
                           "print(json.load(sys.stdin)[\"samples\"])'")
                   .stdout.strip() or 0)
    wait_until(lambda: samples() > 50, 60, "samples from nobody's process")


def reload_lets_group_profd_control(c):
    pid = c.prop("profd.service", "MainPID")
    c.shell("echo 'allow-group profd' >/etc/profd.conf")
    c.run("systemctl", "reload", "profd.service")
    wait_until(lambda: "SIGHUP" in c.run("journalctl", "-b", "-u", "profd",
                                         "--no-pager", "-o", "cat").stdout,
               30, "SIGHUP in profd's log")
    if c.prop("profd.service", "MainPID") != pid:
        raise Fail("reload restarted profd")
    wait_until(lambda: c.run(*AS_NOBODY, "--groups=" + profd_gid(c),
                             "profctl", "start", ok=False).returncode == 0,
               30, "a member of group profd allowed to control")


def restart_keeps_sockets_and_agents(c):
    pid = c.prop("profd.service", "MainPID")
    c.run("systemctl", "restart", "profd.service")
    wait_until(lambda: c.prop("profd.service", "ActiveState") == "active" and
               c.prop("profd.service", "MainPID") not in (pid, "0"), 30,
               "a new profd")
    c.run("test", "-S", "/run/profd/agent.sock")
    c.run("test", "-S", "/run/profd/control.sock")
    wait_until(lambda: c.shell(
        "profctl status --format json | python3 -c 'import json,sys; "
        "print(any(a[\"connected\"] and a[\"service\"] == \"boot\" "
        "for a in json.load(sys.stdin)[\"agents\"]))'").stdout.strip()
        == "True", 60, "the agent connected again after the restart")


def watchdog_kills_a_stuck_profd(c):
    pid = c.prop("profd.service", "MainPID")
    n = int(c.prop("profd.service", "NRestarts"))
    c.run("kill", "-STOP", pid)
    wait_until(lambda: int(c.prop("profd.service", "NRestarts")) > n and
               c.prop("profd.service", "ActiveState") == "active",
               WATCHDOG_S + 60, "the watchdog to restart profd", 0.5)
    j = c.run("journalctl", "-b", "-u", "profd", "--no-pager").stdout
    if "atchdog timeout" not in j:
        raise Fail("no watchdog timeout in the journal")
    c.run("profctl", "status")


def stop_is_clean_and_sockets_stay(c):
    c.run("systemctl", "stop", "profd.service")
    r = c.prop("profd.service", "Result")
    if r != "success":
        raise Fail("stop: Result=%s" % r)
    if c.prop("profd.socket", "ActiveState") != "active":
        raise Fail("agent socket went with the service")
    c.run("profctl", "status")      # activates it again
    wait_until(lambda: c.prop("profd.service", "ActiveState") == "active",
               30, "re-activation")


CHECKS = [(f.__name__, f) for f in (
    install_like_a_package, sockets_have_their_modes,
    first_connection_starts_profd_ready, daemon_runs_sandboxed,
    control_needs_group_profd, agent_of_another_user_is_profiled,
    reload_lets_group_profd_control, restart_keeps_sockets_and_agents,
    watchdog_kills_a_stuck_profd, stop_is_clean_and_sockets_stay)]

if __name__ == "__main__":
    main()
