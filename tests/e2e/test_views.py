"""Every view and format of a real profile: a fleet of real agents, then
show in each format, checked by tools we did not write (python's json, go
tool pprof, speedscope's own app, headless Chromium)."""
import json
import os
import shutil
import subprocess
import tempfile

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
