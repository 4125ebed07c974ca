"""Access: profd decides who may do what from the kernel's credentials of
each connection (SO_PEERCRED), never from file modes or what a peer claims.
profctl and a fake agent run here as unprivileged users the test creates
(useradd), so these tests need root; without it they say so and pass."""
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time

from fakeagent import FakeAgent, frame
from harness import BIN, check, once, wait_until, connect, closed_by_peer

HERE = os.path.dirname(os.path.abspath(__file__))
USERS = {
    # name: supplementary groups
    "profd-e2e-none": [],
    "profd-e2e-read": ["profd-e2e-readers"],
    "profd-e2e-ctl": ["profd-e2e-admins"],
}
SECRET = "--db-password=hunter2"


def have_users():
    """Creates the test users and groups once; False when not root."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        print("  (skipped: needs root and useradd to create test users)")
        return False
    for g in ("profd-e2e-readers", "profd-e2e-admins"):
        try:
            grp.getgrnam(g)
        except KeyError:
            subprocess.run(["groupadd", "--system", g], check=True)
    for u, groups in USERS.items():
        try:
            pwd.getpwnam(u)
        except KeyError:
            cmd = ["useradd", "--system", "--no-create-home",
                   "--shell", "/usr/sbin/nologin"]
            if groups:
                cmd += ["--groups", ",".join(groups)]
            subprocess.run(cmd + [u], check=True)
    return True


def world_readable(ctx):
    """Copies profctl and the fake agent where any user can run them."""
    os.chmod(ctx.tmp, 0o755)
    d = os.path.join(ctx.tmp, "pub")
    if not os.path.isdir(d):
        os.mkdir(d, 0o755)
        shutil.copy(os.path.join(BIN, "profctl"), d)
        shutil.copy(os.path.join(HERE, "fakeagent.py"), d)
        for f in os.listdir(d):
            os.chmod(os.path.join(d, f), 0o755)
    return d


def as_user(user, argv, **kw):
    pw = pwd.getpwnam(user)
    groups = [g.gr_gid for g in grp.getgrall() if user in g.gr_mem]
    return subprocess.run(argv, user=pw.pw_uid, group=pw.pw_gid,
                          extra_groups=groups, cwd="/",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=30, **kw)


def ctl_as(ctx, user, *args):
    pub = world_readable(ctx)
    return as_user(user, [os.path.join(pub, "profctl"), "-r", ctx.rt]
                   + [str(a) for a in args])


def daemon_stat(ctx, name):
    return ctx.ctl_json("status")["daemon"][name]


@once
def test_control_access_follows_the_allow_lists(ctx):
    if not have_users():
        return
    ctx.start_daemon("--allow-read-group", "profd-e2e-readers",
                     "--allow-group", "profd-e2e-admins")
    root_app = FakeAgent(ctx.rt, service="secretive",
                         argv=["app.py", SECRET])
    th = root_app.thread("MainThread")
    root_app.samples(root_app.stack(["main", "work"]), th, 20)
    root_app.flush()
    wait_until(lambda: daemon_stat(ctx, "samples_stored") >= 20, 10,
               "samples stored")

    # Nobody in the lists: every command refused, saying what to configure.
    for cmd in (["status"], ["show"], ["ps"], ["stop"], ["reset"]):
        r = ctl_as(ctx, "profd-e2e-none", *cmd)
        check(r.returncode != 0, "%s allowed to a stranger" % cmd)
        check("permission denied" in r.stderr and "allow-" in r.stderr
              and "profd-e2e-none" in r.stderr,
              "unclear refusal for %s: %r" % (cmd, r.stderr))
    r = ctl_as(ctx, "profd-e2e-none", "status")
    check("allow-read-user profd-e2e-none" in r.stderr, r.stderr)

    # Readers: read-only commands, never argv, never control.
    for cmd in (["status"], ["show"], ["ps"],
                ["show", "--by", "process"]):
        r = ctl_as(ctx, "profd-e2e-read", *cmd)
        check(r.returncode == 0, "reader refused %s: %r" % (cmd, r.stderr))
    for cmd in (["status", "--format", "json"], ["ps", "--format", "json"],
                ["show", "--by", "process", "--format", "json"], ["ps"],
                ["status"]):
        r = ctl_as(ctx, "profd-e2e-read", *cmd)
        check(r.returncode == 0, "reader: %s: %r" % (cmd, r.stderr))
        check("hunter2" not in r.stdout, "argv shown to a reader by %s: %r"
              % (cmd, r.stdout[:400]))
    check("hunter2" in ctx.ctl("ps", "--format", "json").stdout,
          "root must see argv")
    for cmd in (["start"], ["stop"], ["reset"], ["reload"]):
        r = ctl_as(ctx, "profd-e2e-read", *cmd)
        check(r.returncode != 0 and "permission denied" in r.stderr
              and "allow-user profd-e2e-read" in r.stderr,
              "reader ran %s: %r" % (cmd, r.stderr))

    # Controllers: everything.
    for cmd in (["start", "--rate", "50"], ["status"], ["stop"]):
        r = ctl_as(ctx, "profd-e2e-ctl", *cmd)
        check(r.returncode == 0, "controller refused %s: %r"
              % (cmd, r.stderr))
    check("hunter2" in ctl_as(ctx, "profd-e2e-ctl", "ps", "--format",
                              "json").stdout, "a controller sees argv")

    st = ctx.ctl_json("status")
    check(st["daemon"]["controls_denied"] >= 10,
          "denials counted: %r" % st["daemon"]["controls_denied"])
    check("denied 'stop'" in open(ctx.daemon_log).read(),
          "one log line per denial")
    root_app.close()


@once
def test_reload_applies_a_new_config(ctx):
    if not have_users():
        return
    conf = os.path.join(ctx.tmp, "profd.conf")
    with open(conf, "w") as f:
        f.write("# nobody yet\nmax-gone 10\n")
    ctx.start_daemon("-c", conf)
    check(ctl_as(ctx, "profd-e2e-none", "status").returncode != 0,
          "stranger refused before the reload")
    with open(conf, "a") as f:
        f.write("allow-read-user profd-e2e-none\n")
    r = ctx.ctl("reload")
    check(conf in r.stdout, "reload names the file: %r" % r.stdout)
    r = ctl_as(ctx, "profd-e2e-none", "status")
    check(r.returncode == 0, "reader after reload: %r" % r.stderr)
    check(ctl_as(ctx, "profd-e2e-none", "stop").returncode != 0,
          "read access only")
    # SIGHUP does the same; a broken file changes nothing and says why.
    with open(conf, "a") as f:
        f.write("allow-user profd-e2e-none\n")
    ctx.daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: ctl_as(ctx, "profd-e2e-none", "stop").returncode
               == 0, 10, "SIGHUP to apply allow-user")
    with open(conf, "a") as f:
        f.write("alow-group typo\n")
    r = ctx.ctl("reload", ok=False)
    check(r.returncode != 0 and "alow-group" in r.stderr and
          "kept" in r.stderr, "bad config refused: %r" % r.stderr)
    check(ctl_as(ctx, "profd-e2e-none", "stop").returncode == 0,
          "the settings in effect stay")
    # At start, a bad config file is an error naming the line.
    d = ctx.daemon
    ctx.stop_daemon()
    r = subprocess.run([os.path.join(BIN, "profd"), "-c", conf, "-r",
                        ctx.rt], stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=10)
    check(r.returncode == 2 and "profd.conf:5" in r.stderr
          and "alow-group" in r.stderr, "bad config at start: %r"
          % r.stderr)
    check(d.poll() is not None, "stopped")


@once
def test_agents_are_filed_under_their_kernel_pid(ctx):
    if not have_users():
        return
    ctx.start_daemon()
    pub = world_readable(ctx)
    victim = subprocess.Popen(["sleep", "60"])
    ctx.procs.append(victim)
    script = (
        "import sys, time\n"
        "sys.path.insert(0, %r)\n"
        "from fakeagent import FakeAgent\n"
        "a = FakeAgent(%r, pid=%d, service='web', host='elsewhere',"
        " start_ns=1)\n"
        "th = a.thread('MainThread')\n"
        "a.samples(a.stack(['main', 'EVIL_injected']), th, 40)\n"
        "a.flush()\n"
        "time.sleep(1)\n"
        "import os; print(os.getpid())\n"
        "a.close()\n" % (pub, ctx.rt, victim.pid))
    r = as_user("profd-e2e-none", ["/usr/bin/python3", "-c", script])
    check(r.returncode == 0, "fake agent as a user: %r" % r.stderr)
    attacker = int(r.stdout.split()[-1])
    wait_until(lambda: daemon_stat(ctx, "samples_stored") >= 40, 10,
               "samples stored")
    rows = ctx.ctl_json("show", "--by", "process")["processes"]
    pids = {p["pid"] for p in rows}
    check(victim.pid not in pids, "samples filed under the victim: %r"
          % rows)
    check(attacker in pids, "samples under the sender's own pid: %r" % rows)
    mine = [p for p in rows if p["pid"] == attacker][0]
    check(mine["host"] != "elsewhere" and mine["start_ns"] > 1,
          "host and start time are the kernel's: %r" % mine)
    check(daemon_stat(ctx, "hello_claims_refused") == 1, "counted")
    agents = ctx.ctl_json("status")["agents"]
    uid = pwd.getpwnam("profd-e2e-none").pw_uid
    check(any(a["pid"] == attacker and a["uid"] == uid for a in agents),
          "status shows the kernel's uid: %r" % agents)
    victim.kill()


def connected_by_a_child_as(ctx, user):
    """A socket to agent.sock that a child of ours running as user
    connected (so the kernel's peer is that child and user), then exited:
    its pid, and the socket, still open here."""
    pw = pwd.getpwnam(user)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            s.connect(os.path.join(ctx.rt, "agent.sock"))
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    check(status == 0, "connecting as %s failed" % user)
    return pid, s


def spawn_with_pid(ctx, pid, tries=20):
    """A root process given pid (ns_last_pid), or None where the kernel
    does not let us choose."""
    for _ in range(tries):
        try:
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(pid - 1))
        except OSError:
            return None
        p = subprocess.Popen(["sleep", "60"])
        ctx.procs.append(p)
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    return None


@once
def test_a_hello_from_a_process_gone_or_reused_is_refused(ctx):
    """The process that connected exited before its hello was read: its
    pid may already be another user's process (here a root one, given that
    pid on purpose), or nobody's.  Either way the hello is refused, with
    one log line and a counter, and nothing is filed under the pid; the
    start time is never taken from the hello."""
    if not have_users():
        return
    ctx.start_daemon()
    world_readable(ctx)
    refused = 0
    for case in ("gone", "reused"):
        pid, s = connected_by_a_child_as(ctx, "profd-e2e-none")
        victim = None
        if case == "reused":
            victim = spawn_with_pid(ctx, pid)
            if victim is None:
                print("  (reuse case skipped: cannot choose a pid here)")
                s.close()
                continue
        a = FakeAgent(ctx.rt, pid=pid, service="ghost-" + case,
                      argv=("ghost.py", SECRET), start_ns=1, sock=s)
        th = a.thread("MainThread")
        a.samples(a.stack(["main", "EVIL_" + case]), th, 40)
        a.flush()
        check(closed_by_peer(s), "%s: the connection stayed open" % case)
        refused += 1
        check(daemon_stat(ctx, "hello_identity_refused") == refused,
              "%s: not counted" % case)
        pids = {p["pid"] for p in ctx.ctl_json("ps")["processes"]}
        check(pid not in pids, "%s: a record for pid %d: %r"
              % (case, pid, ctx.ctl_json("ps")["processes"]))
        if victim is not None:
            victim.kill()
    check(daemon_stat(ctx, "samples_stored") == 0, "samples were stored")
    with open(ctx.daemon_log, errors="replace") as f:
        lines = [l for l in f if "refused" in l and "hello" in l or
                 "reused?" in l]
    check(len(lines) == refused, "want %d log lines, got %r"
          % (refused, lines))
    print("  %d hellos refused: %s" % (refused, "".join(lines).strip()))


@once
def test_agents_per_uid_are_limited(ctx):
    if not have_users():
        return
    ctx.start_daemon("--max-agents-per-uid", "3")
    world_readable(ctx)
    # The user's 6 connections stay open until profd has taken or refused
    # each one (the test tells the script on stdin); then the script counts
    # those profd kept open.
    script = (
        "import socket, sys\n"
        "socks = []\n"
        "for i in range(6):\n"
        "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "    s.connect(%r)\n"
        "    socks.append(s)\n"
        "sys.stdin.readline()\n"
        "alive = 0\n"
        "for s in socks:\n"
        "    s.settimeout(0.2)\n"
        "    try:\n"
        "        alive += s.recv(1) != b''\n"
        "    except socket.timeout:\n"
        "        alive += 1\n"
        "    except OSError:\n"
        "        pass\n"
        "print(alive)\n" % os.path.join(ctx.rt, "agent.sock"))
    pw = pwd.getpwnam("profd-e2e-none")
    p = subprocess.Popen(["/usr/bin/python3", "-c", script], user=pw.pw_uid,
                         group=pw.pw_gid, extra_groups=[], cwd="/",
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    ctx.procs.append(p)

    def decided():
        d = ctx.ctl_json("status")["daemon"]
        return (p.poll() is not None or
                d["agents_accepted"] + d["agents_rejected_uid"] >= 6)
    wait_until(decided, 20, "profd to take or refuse 6 connections")
    out, err = p.communicate("go\n", timeout=30)
    check(p.returncode == 0, err)
    check(out.strip() == "3", "3 of 6 kept: %r" % out)
    check(daemon_stat(ctx, "agents_rejected_uid") == 3, "counted")
    # Root's agents are not held back by another user's limit.
    a = FakeAgent(ctx.rt, pid=4242, service="root-app")
    th = a.thread("MainThread")
    a.samples(a.stack(["main"]), th, 5)
    a.flush()
    wait_until(lambda: daemon_stat(ctx, "samples_stored") >= 5, 10,
               "a root agent still gets in")
    a.close()


@once
def test_an_agent_cannot_send_control_requests(ctx):
    ctx.start_daemon()
    s = connect(ctx.sock("agent.sock"))
    s.sendall(frame([300, "reset", {}]))
    check(closed_by_peer(s), "a request on agent.sock must close it")
    check(daemon_stat(ctx, "bad_frames") >= 1, "counted")
    check("message 300 before hello" in open(ctx.daemon_log).read(),
          "one log line says why")


@once
def test_writable_runtime_dirs_are_refused(ctx):
    d = os.path.join(ctx.tmp, "open")
    os.mkdir(d)
    os.chmod(d, 0o777)
    r = subprocess.run([os.path.join(BIN, "profd"), "-r", d],
                       stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=10)
    check(r.returncode != 0 and "chmod go-w" in r.stderr,
          "profd in a 0777 dir: %r" % r.stderr)
    r = subprocess.run([os.path.join(BIN, "profctl"), "-r", d, "status"],
                       stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=10)
    check(r.returncode != 0 and "writable" in r.stderr,
          "profctl in a 0777 dir: %r" % r.stderr)
    # The agent does not attach there; the program runs untouched.
    env = ctx.agent_env()
    env["PROFD_RUNTIME_DIR"] = d
    r = subprocess.run([ctx.python, "-m", "profagent", "run", "--",
                        ctx.python, "-c", "print('ran')"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    check(r.returncode == 0 and "ran" in r.stdout, "program: %r" % (r,))
    check("not attaching" in r.stderr and "writable" in r.stderr,
          "agent in a 0777 dir: %r" % r.stderr)


@once
def test_strangers_never_push_out_entitled_profctl_connections(ctx):
    if not have_users():
        return
    ctx.start_daemon("--max-controls", "2")
    fd_dir = "/proc/%d/fd" % ctx.daemon.pid
    # profd's descriptors at rest: the fewest over half a second (start-up
    # may still hold a file or two open for a moment, ASan's too).
    base = None
    for _ in range(10):
        n = len(os.listdir(fd_dir))
        base = n if base is None else min(base, n)
        time.sleep(0.05)
    held = [connect(ctx.sock("control.sock")) for _ in range(2)]
    # Both accepted (profd holds a descriptor for each) before the stranger;
    # if the count cannot tell (it moved for another reason), a moment.
    deadline = time.time() + 10
    while len(os.listdir(fd_dir)) < base + 2 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    r = ctl_as(ctx, "profd-e2e-none", "status")
    check(r.returncode != 0, "a stranger got in at max-controls")
    for s in held:
        check(not closed_by_peer(s, timeout=0.5),
              "a stranger's connection closed root's idle one")
    # root's new connection may push out an idle one of root's.
    r = ctx.ctl("status", ok=False)
    check(r.returncode == 0, "root refused at max-controls: %r" % r.stderr)
    for s in held:
        s.close()
