"""profd under systemd's protocols: the units as systemd reads them, socket
activation, sd_notify (READY, WATCHDOG, STOPPING).  The units booted for real
in a container: tests/boot/run.py (make test-boot)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading

from harness import BIN, ROOT, WORKLOADS, check, once, wait_until

UNITS = ("profd.socket", "profd-control.socket", "profd.service")
MAX_EXPOSURE = 1.5    # systemd-analyze security; 0.5 when written


def render_units(ctx):
    """systemd/*.in with ExecStart= pointing at bin/profd."""
    d = os.path.join(ctx.tmp, "units")
    os.makedirs(d)
    for name in UNITS:
        with open(os.path.join(ROOT, "systemd", name + ".in")) as f:
            text = f.read().replace("@SBINDIR@", BIN).replace("@BINDIR@", BIN)
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    return d


@once
def test_units_verify_and_stay_hardened(ctx):
    check(shutil.which("systemd-analyze"), "systemd-analyze not installed")
    d = render_units(ctx)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no"] +
                       [os.path.join(d, n) for n in UNITS],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=60)
    check(r.returncode == 0 and not r.stdout.strip(),
          "systemd-analyze verify: %s" % r.stdout)
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                        os.path.join(d, "profd.service")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=60)
    m = re.search(r"Overall exposure level for profd.service: ([0-9.]+)",
                  r.stdout)
    check(m, "no exposure level: %s" % r.stdout[-500:])
    check(float(m.group(1)) <= MAX_EXPOSURE,
          "exposure %s > %s:\n%s" % (m.group(1), MAX_EXPOSURE,
                                     "\n".join(l for l in r.stdout.splitlines()
                                               if l.startswith("\u2717"))))
    # The two sockets: any process may attach, only group profd controls.
    with open(os.path.join(d, "profd-control.socket")) as f:
        ctl = f.read()
    with open(os.path.join(d, "profd.socket")) as f:
        agent = f.read()
    check("SocketMode=0660" in ctl and "SocketGroup=profd" in ctl,
          "control.sock not 0660 group profd")
    check("SocketMode=0666" in agent, "agent.sock not open to all")


class Notify:
    """A NOTIFY_SOCKET, drained by a thread as systemd drains its own: what
    profd tells systemd, in order.  (Undrained, a full queue would block
    profd's sd_notify and so its event loop.)"""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.s.settimeout(0.2)
        self.got = []
        self.lock = threading.Lock()
        self.done = False
        self.t = threading.Thread(target=self._drain, daemon=True)
        self.t.start()

    def _drain(self):
        while not self.done:
            try:
                msg = self.s.recv(4096).decode()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.got += msg.split("\n")

    def poll(self):
        with self.lock:
            return list(self.got)

    def count(self, msg):
        return self.poll().count(msg)

    def close(self):
        self.done = True
        self.t.join(5)
        self.s.close()


@once
def test_socket_activation_notifies_ready_watchdog_stopping(ctx):
    act = shutil.which("systemd-socket-activate")
    check(act, "systemd-socket-activate not installed")
    os.makedirs(ctx.rt)
    note = Notify(os.path.join(ctx.tmp, "notify"))
    env = ["-E", "NOTIFY_SOCKET=" + note.path, "-E", "WATCHDOG_USEC=1000000"]
    if ctx.sanitize:
        env += ["-E", "ASAN_OPTIONS=abort_on_error=1"]
    # The activator passes only the variables named with -E.
    ctx.daemon = subprocess.Popen(
        [act, "-l", ctx.sock("agent.sock"), "-l", ctx.sock("control.sock"),
         "--fdname=agent:control"] + env +
        [os.path.join(BIN, "profd"), "-r", ctx.rt],
        stdout=open(ctx.daemon_log, "ab"), stderr=subprocess.STDOUT)
    ctx.procs.append(ctx.daemon)
    wait_until(lambda: os.path.exists(ctx.sock("control.sock")), 10,
               "the activator's sockets")
    # The first connection starts profd.
    ctx.ctl("start", "--rate", "200")
    wait_until(lambda: note.count("READY=1") == 1, 20, "READY=1")
    wait_until(lambda: note.count("WATCHDOG=1") >= 3, 20, "3 WATCHDOG=1 pings")
    p = ctx.run_agent([os.path.join(WORKLOADS, "workload.py"), "--seconds", "4"])
    wait_until(lambda: ctx.ctl_json("show")["samples"] > 50, 30,
               "samples through the passed socket")
    p.wait(60)
    rc = ctx.stop_daemon(signal.SIGTERM, timeout=20)
    check(rc == 0, "profd exited %r on SIGTERM" % rc)
    wait_until(lambda: note.count("STOPPING=1") == 1, 10, "STOPPING=1")
    check(note.count("READY=1") == 1, "READY=1 twice: %r" % note.got)
    # Sockets systemd made are systemd's: profd leaves them alone.
    check(os.path.exists(ctx.sock("agent.sock")),
          "profd removed a socket it was passed")
    note.close()


@once
def test_no_watchdog_pings_unless_asked(ctx):
    os.makedirs(ctx.rt)
    note = Notify(os.path.join(ctx.tmp, "notify"))
    env = ctx.daemon_env()
    env["NOTIFY_SOCKET"] = note.path
    env.pop("WATCHDOG_USEC", None)
    ctx.daemon = subprocess.Popen([os.path.join(BIN, "profd"), "-r", ctx.rt],
                                  stdout=open(ctx.daemon_log, "ab"),
                                  stderr=subprocess.STDOUT, env=env)
    ctx.procs.append(ctx.daemon)
    wait_until(lambda: note.count("READY=1") == 1, 20, "READY=1")
    # Two housekeeping ticks (STORE_TICK_MS) seen through their effect: the
    # uptime moved on by two seconds.
    up = ctx.ctl_json("status")["uptime_s"]
    wait_until(lambda: ctx.ctl_json("status")["uptime_s"] >= up + 2, 20,
               "two more seconds of uptime", step=0.2)
    check("WATCHDOG=1" not in note.poll(), "pinged without WATCHDOG_USEC")
    check(ctx.stop_daemon() == 0, "profd did not exit 0")
    wait_until(lambda: note.count("STOPPING=1") == 1, 10, "STOPPING=1")
    note.close()
