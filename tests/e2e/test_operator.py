"""What an operator reads: the status table's columns, help, and which
departed processes status keeps."""
import os

import fakeagent
from harness import PROTO_VERSION, WORKLOADS, check, once, wait_until

COMMANDS = ("status", "start", "stop", "show", "flamegraph", "ps", "reset",
            "reload")


def status_rows(ctx):
    """The status table as {pid: {header: cell}} (CMD may hold spaces)."""
    out = ctx.ctl("status").stdout.splitlines()
    heads = [i for i, l in enumerate(out) if l.lstrip().startswith("PID ")]
    if not heads:
        return [], {}       # no agents yet
    names = out[heads[0]].split()
    rows = {}
    for line in out[heads[0] + 1:]:
        cells = line.split(None, len(names) - 1)
        if len(cells) == len(names):
            rows[int(cells[0])] = dict(zip(names, cells))
    return names, rows


@once
def test_status_shows_ppid_service_mode_and_reader_in_effect(ctx):
    ctx.start_daemon()
    p = ctx.run_agent([os.path.join(WORKLOADS, "workload.py"),
                       "--seconds", "60"], service="colsvc")
    ctx.ctl("start", "--mode", "cpu", "--reader", "gil")

    def row():
        names, rows = status_rows(ctx)
        r = [v for v in rows.values() if v["SERVICE"] == "colsvc"]
        return (names, r[0]) if r and r[0]["READER"] == "gil" else None
    names, r = wait_until(row, 30, "the agent's row with reader gil")
    check(names[:8] == ["PID", "PPID", "SERVICE", "PYTHON", "STATE",
                        "PROFILING", "MODE", "READER"], "headers %r" % names)
    st = ctx.ctl_json("status")
    a = [x for x in st["agents"] if x["service"] == "colsvc"][0]
    check(r["PPID"] == str(a["ppid"]) and a["ppid"] > 1,
          "PPID %r, json %r" % (r["PPID"], a["ppid"]))
    check(r["MODE"] == "cpu" and r["PROFILING"] == "on", "row %r" % r)
    check(a["reader"] == "gil" and a["protocol"] == PROTO_VERSION,
          "json %r" % a)
    p.kill()


@once
def test_help_for_a_command_and_for_help(ctx):
    for c in COMMANDS:
        r = ctx.ctl("help", c)
        own = ctx.ctl(c, "--help")
        check(r.stdout == own.stdout and ("profctl [-r DIR] %s" % c) in
              r.stdout, "help %s differs from %s --help" % (c, c))
    for args in (("help", "--help"), ("help", "-h"), ("help", "help")):
        r = ctx.ctl(*args)
        check(r.stdout.startswith("usage: profctl help [COMMAND]"),
              "%s: %r" % (" ".join(args), r.stdout))
    r = ctx.ctl("help", "nosuch", ok=False)
    check(r.returncode == 2 and "unknown command" in r.stderr,
          "help nosuch: %d %r" % (r.returncode, r.stderr))


@once
def test_status_forgets_the_longest_departed_first(ctx):
    ctx.start_daemon("--max-gone", "1")
    first = fakeagent.FakeAgent(ctx.rt, pid=5001, service="attached-first")
    second = fakeagent.FakeAgent(ctx.rt, pid=5002, service="attached-second")
    first.flush()
    second.flush()

    def pids(connected=None):
        return {a["pid"] for a in ctx.ctl_json("status")["agents"]
                if connected is None or a["connected"] == connected}
    wait_until(lambda: {5001, 5002} <= pids(True), 10, "both to attach")
    second.close()
    wait_until(lambda: 5002 in pids(False), 10, "the second to leave")
    first.close()       # the most recently departed: status keeps it
    wait_until(lambda: 5001 in pids(False), 10, "the first to leave")
    check(pids() & {5001, 5002} == {5001},
          "status kept %r, want the one that left last" % pids())
    names, rows = status_rows(ctx)
    check(5001 in rows and rows[5001]["STATE"] == "gone", "row %r" % rows[5001])
