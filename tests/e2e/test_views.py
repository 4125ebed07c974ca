"""Every view and format of a real profile: a fleet of real agents, then
show in each format, checked by tools we did not write (python's json, go
tool pprof, speedscope's own app, headless Chromium)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from fakeagent import FakeAgent
from harness import ROOT, WORKLOADS, check, once, wait_until

TOOLS = os.path.join(ROOT, "tests", "tools")
BROWSER = os.path.join(ROOT, "tests", "browser")


def profiled_fleet(ctx, seconds=4):
    """A parent and 2 workers under the agent, profiled at 200 Hz until
    they exit.  Returns the JSON of show."""
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "200")
    fleet = ctx.run_agent([os.path.join(WORKLOADS, "fleet.py"), "--workers", "2",
                           "--seconds", str(seconds)], service="fleet")
    fleet.wait(60)
    check(fleet.returncode == 0, "fleet failed: %s" % ctx.output(fleet)[-500:])
    wait_until(lambda: not any(a["connected"] for a in ctx.ctl_json("status")["agents"]),
               20, "the agents to detach")
    show = ctx.ctl_json("show")
    check(show["samples"] > 100, "too few samples: %d" % show["samples"])
    return show


def run_tool(args, what, timeout=120):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=timeout)
    check(r.returncode == 0, "%s failed: %s" % (what, r.stdout[-1500:]))
    return r.stdout


def test_every_view_of_a_real_fleet(ctx):
    show = profiled_fleet(ctx)
    total = show["samples"]
    check(sum(p["samples"] for p in show["processes"]) == total,
          "processes do not add up: %r" % show["processes"])
    self_sum = sum(f["self"] for f in ctx.ctl_json("show", "--top", "0")["functions"])
    check(self_sum == total, "self %d != samples %d" % (self_sum, total))
    names = {f["function"] for f in show["functions"]}
    check({"leaf_a", "leaf_b"} <= names, "leaves missing: %r" % sorted(names)[:10])
    # The agent's own frames never show.
    check(not any("_bootstrap_inner" == f["function"] and "profagent" in f["file"]
                  for f in ctx.ctl_json("show", "--top", "0")["functions"]),
          "profagent's wrapper frame in the profile")
    threads = ctx.ctl_json("show", "--by", "thread")["threads"]
    check(all(t["thread"] for t in threads) and
          any(t["thread"] == "MainThread" for t in threads), "threads %r" % threads)
    for by in ("line", "file", "process", "service"):
        d = ctx.ctl_json("show", "--by", by)
        check(d["samples"] == total, "--by %s total %r" % (by, d["samples"]))
    tree = ctx.ctl_json("show", "--tree")["tree"]
    check(tree and tree[0]["depth"] == 0, "tree %r" % tree[:2])
    # Folded: counts add up, with and without root frames.
    folded = ctx.ctl("show", "--format", "folded").stdout.splitlines()
    check(sum(int(l.rsplit(" ", 1)[1]) for l in folded) == total, "folded total")
    rooted = ctx.ctl("show", "--format", "folded", "--root", "pid",
                     "--root", "thread").stdout.splitlines()
    check(all(" pid " in l.split(";")[0] or l.startswith("pid ") for l in rooted),
          "pid root frames: %r" % rooted[:2])
    check(sum(int(l.rsplit(" ", 1)[1]) for l in rooted) == total, "rooted total")
    tw = ctx.ctl("show", "--format", "folded", "--weight", "time").stdout.splitlines()
    check(abs(sum(int(l.rsplit(" ", 1)[1]) for l in tw) - show["weight_us"]) <= len(tw),
          "time-weighted folded != weight_us")
    # pprof, read by go tool pprof.
    pb = os.path.join(ctx.tmp, "profile.pb.gz")
    ctx.ctl("show", "--format", "pprof", "-o", pb)
    run_tool(["sh", os.path.join(TOOLS, "pprof-check.sh"), pb, str(total),
              "leaf_a", "leaf_b"], "go tool pprof")
    top = run_tool(["go", "tool", "pprof", "-top", "-sample_index=0", pb], "pprof -top")
    check("Total samples = %d" % total in top or "of %d total" % total in top,
          "pprof total differs from show (%d): %s" % (total, top[:400]))
    labels = run_tool(["go", "tool", "pprof", "-tags", pb], "pprof -tags")
    check("pid" in labels and "thread" in labels and "MainThread" in labels,
          "pprof labels: %s" % labels[:400])


@once
def test_speedscope_and_flame_graph_open_in_their_viewers(ctx):
    for tool in ("node", "npm", "/usr/bin/chromium"):
        check(shutil.which(tool) is not None,
              "%s is missing (scripts/deps.sh installs it)" % tool)
    show = profiled_fleet(ctx)
    total = show["samples"]
    ss = os.path.join(ctx.tmp, "profile.speedscope.json")
    ctx.ctl("show", "--format", "speedscope", "-o", ss)
    with open(ss) as f:
        doc = json.load(f)
    check(doc["$schema"].endswith("file-format-schema.json"), "schema %r" % doc.get("$schema"))
    check(sum(sum(p["weights"]) for p in doc["profiles"]) == total, "speedscope total")
    run_tool(["sh", os.path.join(TOOLS, "speedscope-check.sh"), ss, str(total),
              "leaf_a", "leaf_b"], "speedscope's importer", timeout=300)
    svg = os.path.join(ctx.tmp, "flame.svg")
    r = ctx.ctl("flamegraph", "-o", svg)
    check(os.path.getsize(svg) > 1000 and "wrote" in r.stderr, "flamegraph: %r" % r.stderr)
    if shutil.which("xmllint"):
        run_tool(["xmllint", "--noout", "--nonet", svg], "xmllint")
    if not os.path.isdir(os.path.join(BROWSER, "node_modules", "playwright-core")):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER,
                           timeout=300)
        check(r.returncode == 0, "npm ci in tests/browser failed")
    shots = os.environ.get("PROFD_SHOTS") or os.path.join(ctx.tmp, "shots")
    run_tool(["node", os.path.join(BROWSER, "svg-check.js"), svg, shots, "leaf_a"],
             "the flame graph in Chromium", timeout=300)
    for name in ("before.png", "searched.png", "zoomed.png"):
        check(os.path.getsize(os.path.join(shots, name)) > 5000, "screenshot %s" % name)
    # A box shows the function's name, its tip the file and line; the
    # subtitle says what --oncpu measures.
    with open(svg) as f:
        doc = f.read()
    boxes = re.findall(r'<text x="[0-9.]+" y="[0-9]+">([^<]*)</text>', doc)
    check("leaf_a" in boxes and not [b for b in boxes if ".py:" in b],
          "box labels with paths: %r" % [b for b in boxes if ".py" in b][:3])
    check(re.search(r"<title>leaf_a \([^<]*workload\.py:[0-9]+\)", doc),
          "no file:line in leaf_a's tip")
    on = ctx.ctl("flamegraph", "--oncpu", "-o", "-").stdout
    check("on-CPU time" in on.split('id="subtitle"')[1].split("<")[0],
          "--oncpu subtitle: %r" % on.split('id="subtitle"')[1][:120])


@once
def test_every_view_warns_when_the_windows_stacks_were_unreadable(ctx):
    """Agents that say per batch how many stacks they left out (protocol
    5): one left out 7% an hour ago and none now, one never more than 1%,
    and a version 4 one that cannot say (its count is ignored).  Every
    format of show says so for a window over 1%, none for the others; the
    figures survive a restart with a state dir."""
    state = os.path.join(ctx.tmp, "state")
    ctx.start_daemon("-s", state)
    now = time.time_ns()
    hour_ago = now - 3600 * 10 ** 9
    torn = FakeAgent(ctx.rt, pid=7301, service="torn", versions=(4, 5))
    whole = FakeAgent(ctx.rt, pid=7302, service="whole", versions=(4, 5))
    old = FakeAgent(ctx.rt, pid=7303, service="old", versions=(4, 4))
    seq = 0
    for a, batches in ((torn, [(hour_ago, 93, 7), (now, 100, 0)]),
                       (whole, [(now, 99, 1)]),
                       (old, [(now, 50, 50)])):
        th = a.thread("MainThread")
        st = a.stack(["main", "work_%d" % a.pid])
        for t, n, invalid in batches:
            for _ in range(10):
                seq += 1
                a.batch(seq, st, th, n, invalid=invalid, t_ns=t)
        a.flush()
    wait_until(lambda: ctx.ctl_json("status")["daemon"]["samples_stored"]
               == 930 + 1000 + 990 + 500, 20, "every sample stored")
    warn = ("warning: 3.5% of stacks in this window were unreadable (torn) "
            "and left out; see profctl status")

    def views(pid, *window):
        """(table, tree, json, folded stderr) of pid's window."""
        args = ["show", "--pid", pid] + list(window)
        return (ctx.ctl(*args).stdout, ctx.ctl(*(args + ["--tree"])).stdout,
                ctx.ctl_json(*args),
                ctx.ctl(*(args + ["--format", "folded"])).stderr)

    def check_warned(pid, want, *window):
        table, tree, js, folded = views(pid, *window)
        lines = table.splitlines()
        check(len(lines) > 1 and lines[1] == want,
              "table of %s %r:\n%s" % (pid, window, table))
        check(want in tree.splitlines(), "tree:\n%s" % tree)
        check(js.get("warning") == want, "json: %r" % js.get("warning"))
        check("profctl: " + want in folded, "folded stderr: %r" % folded)
        return js

    def check_quiet(pid, *window):
        table, tree, js, folded = views(pid, *window)
        check("warning" not in table + tree + folded and "warning" not in js,
              "a warning for %s %r:\n%s%s" % (pid, window, table, folded))
        return js

    # torn: 70 of 1930 + 70 stacks in the whole window; all of them in the
    # window of an hour ago; none in the last half hour.
    js = check_warned(7301, warn)
    check(js["invalid"] == 70 and abs(js["invalid_pct"] - 3.5) < 1e-9,
          "json figures %r %r" % (js["invalid"], js["invalid_pct"]))
    check_warned(7301, warn.replace("3.5%", "7.0%"), "--until", "30m")
    js = check_quiet(7301, "--since", "30m")
    check(js["invalid"] == 0 and js["invalid_pct"] == 0, "recent %r" % js)
    # whole: exactly 1%, not over it; old: not said, no figure.
    js = check_quiet(7302)
    check(js["invalid"] == 10, "whole: %r" % js)
    js = check_quiet(7303)
    check("invalid" not in js and "invalid_pct" not in js, "old: %r" % js)
    # The stack formats carry it inside.
    pb = os.path.join(ctx.tmp, "torn.pb.gz")
    r = ctx.ctl("show", "--pid", 7301, "--format", "pprof", "-o", pb)
    check("profctl: " + warn in r.stderr, "pprof stderr: %r" % r.stderr)
    comments = run_tool(["go", "tool", "pprof", "-comments", pb],
                        "pprof -comments")
    check(warn in comments, "pprof comments: %r" % comments)
    doc = json.loads(ctx.ctl("show", "--pid", 7301, "--format",
                             "speedscope").stdout)
    check(warn in doc["name"], "speedscope name: %r" % doc["name"])
    svg = ctx.ctl("show", "--pid", 7301, "--format", "svg").stdout
    check(warn in svg, "no warning in the flame graph")
    # A diff says which window.
    d = ctx.ctl("show", "--diff", "--pid", 7302, "--base-pid", 7301).stdout
    check(warn.replace("this window", "the baseline window") in d and
          "in this window" not in d, "diff:\n%s" % d)
    # Kept across a restart (SIGTERM writes everything).
    for a in (torn, whole, old):
        a.close()
    ctx.stop_daemon()
    ctx.start_daemon("-s", state)
    check_warned(7301, warn)
    check_warned(7301, warn.replace("3.5%", "7.0%"), "--until", "30m")
