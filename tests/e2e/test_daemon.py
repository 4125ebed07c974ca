"""profd and profctl on their own: errors, bad input, signals (systemd:
test_systemd.py)."""
import os
import signal
import subprocess
import time

from harness import (BIN, ROOT, WORKLOADS, check, closed_by_peer, connect,
                     frame, once, wait_until)

COMMANDS = ["status", "start", "stop", "show", "reset"]


@once
def test_profctl_without_daemon_says_where_and_what_to_do(ctx):
    r = ctx.ctl("status", ok=False)
    # No daemon is a failed request (exit 1), not a usage error (2).
    check(r.returncode == 1, "status without a daemon exited %d, want 1"
          % r.returncode)
    check(ctx.sock("control.sock") in r.stderr, "path not named: %r" % r.stderr)
    check("profd" in r.stderr, "no hint to start profd: %r" % r.stderr)


@once
def test_every_command_has_help(ctx):
    for args in [["--help"]] + [[c, "--help"] for c in COMMANDS]:
        r = ctx.ctl(*args, ok=False)
        check(r.returncode == 0, "profctl %s exited %d" % (" ".join(args), r.returncode))
        check("usage" in (r.stdout + r.stderr).lower(),
              "no usage for %s: %r" % (args, r.stdout))
    r = subprocess.run([os.path.join(BIN, "profd"), "--help"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=10)
    check(r.returncode == 0 and "-r" in r.stdout, "profd --help: %r" % r.stdout)


@once
def test_profctl_rejects_bad_arguments(ctx):
    """profctl(1) EXIT STATUS: 2 for a usage error (a bad flag value, an
    unknown flag or command), 1 for a request profd refuses (here an
    unknown pid); either way stderr says why."""
    ctx.start_daemon()
    usage = (["start", "--rate", "0"], ["start", "--rate", "20000"],
             ["start", "--rate", "fast"], ["show", "--format", "xml"],
             ["start", "--mode", "bogus"], ["start", "--bogus"],
             ["frobnicate"])
    refused = (["start", "--pid", "999999"], ["stop", "--pid", "999999"],
               ["show", "--pid", "999999"])
    for want, cases in ((2, usage), (1, refused)):
        for args in cases:
            r = ctx.ctl(*args, ok=False)
            check(r.returncode == want and r.stderr.strip(),
                  "profctl %s: exit %d (want %d), stderr %r"
                  % (" ".join(args), r.returncode, want, r.stderr))
    # profd stays up after refusing them.
    check(ctx.daemon.poll() is None, "profd died")


@once
def test_bad_frames_close_only_the_sender(ctx):
    ctx.start_daemon()
    good = ctx.run_agent([os.path.join(WORKLOADS, "workload.py"), "--seconds", "15"])
    wait_until(lambda: any(a["connected"] for a in ctx.ctl_json("status")["agents"]),
               20, "a good agent")
    agent = ctx.sock("agent.sock")
    bad_inputs = [
        frame(b"\xc1"),                                  # not msgpack
        b"\x7f\xff\xff\xff" + b"x" * 16,                 # oversized length
        frame(b"\x93\x6a\x00\x95\x01\x01\x01\x01\x00"),  # samples before hello
        frame(b"\x92\x64\xdf\x7f\xff\xff\xff"),          # map bomb
        b"\x00\x00\x00\x00",                             # empty frame
        frame(b"\x91\xcd\x03\xe7"),                      # unknown type
    ]
    for raw in bad_inputs:
        s = connect(agent)
        s.sendall(raw)
        check(closed_by_peer(s), "profd kept a peer that sent %r" % raw[:12])
        s.close()
    # A partial frame and a hang-up must cost nothing either.
    s = connect(agent)
    s.sendall(b"\x00\x00\x10\x00\x93")
    s.close()
    st = ctx.ctl_json("status")
    check(ctx.daemon.poll() is None, "profd died")
    check(st["daemon"].get("bad_frames", 0) >= len(bad_inputs),
          "bad_frames counter %r" % st["daemon"])
    check(any(a["connected"] and a["pid"] == good.pid for a in st["agents"]),
          "the good agent was dropped")
    ctl = ctx.sock("control.sock")
    s = connect(ctl)
    s.sendall(frame(b"\x93\xcd\x01\x2c\xa6status\x05"))  # args not a map
    check(closed_by_peer(s), "profd kept a bad control peer")
    ctx.ctl("status")
    good.kill()


@once
def test_sigterm_removes_sockets_and_exits_zero(ctx):
    ctx.start_daemon()
    check(os.path.exists(ctx.sock("agent.sock")), "no agent.sock")
    rc = ctx.stop_daemon(signal.SIGTERM)
    check(rc == 0, "profd exited %r on SIGTERM" % rc)
    check(not os.path.exists(ctx.sock("agent.sock")) and
          not os.path.exists(ctx.sock("control.sock")), "sockets left behind")


@once
def test_second_daemon_refuses_a_live_runtime_dir(ctx):
    ctx.start_daemon()
    r = subprocess.run([os.path.join(BIN, "profd"), "-r", ctx.rt],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=10)
    check(r.returncode != 0, "a second profd started on the same dir")
    check(ctx.daemon.poll() is None, "the first profd died")
    ctx.ctl("status")


@once
def test_runtime_dir_flag_may_follow_the_command(ctx):
    ctx.start_daemon()
    for args in (["status", "-r", ctx.rt], ["status", "--runtime-dir=" + ctx.rt],
                 ["show", "--top", "3", "-r", ctx.rt]):
        r = subprocess.run([os.path.join(BIN, "profctl")] + args,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=10)
        # An empty store: show reaches profd and says why it has nothing
        # (exit 1), which only a profd at that path can say.
        reached = r.returncode == 0 or (args[0] == "show" and
                                        r.returncode == 1 and
                                        "profiling is off" in r.stderr)
        check(reached, "profctl %s: %s" % (" ".join(args), r.stderr))
