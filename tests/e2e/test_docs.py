"""The documentation cannot drift from the programs: every flag that
profd --help and profctl CMD --help print is in the man page and in docs/,
and every flag the docs' profd table lists is one profd takes."""
import os
import re
import subprocess

from harness import BIN, ROOT, check, once

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")


def text(path, man=False):
    with open(os.path.join(ROOT, path)) as f:
        s = f.read()
    return s.replace("\\-", "-") if man else s


def helptext(*args):
    return subprocess.run(list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=10).stdout


@once
def test_every_flag_of_the_help_is_documented(ctx):
    flags = set(FLAG.findall(helptext(os.path.join(BIN, "profd"), "--help")))
    check(len(flags) > 20, "profd --help lists %d flags" % len(flags))
    ops, man = text("docs/operations.md"), text("man/profd.8", man=True)
    missing = sorted(f for f in flags if f not in ops or f not in man)
    check(not missing, "profd flags not in docs/operations.md or profd.8: "
          "%r" % missing)
    table = set(re.findall(r"^\| `(?:-\w, )?(--[a-z-]+)", ops, re.M))
    extra = sorted(table - flags)
    check(not extra, "docs/operations.md lists flags profd does not take: "
          "%r" % extra)
    ctl = os.path.join(BIN, "profctl")
    cmds = re.findall(r"^  ([a-z]+)\s", helptext(ctl, "--help"), re.M)
    check(len(cmds) >= 8, "profctl --help lists %r" % cmds)
    pman, pdoc = text("man/profctl.1", man=True), text("docs/profctl.md")
    for cmd in cmds:
        fl = set(FLAG.findall(helptext(ctl, cmd, "--help")))
        missing = sorted(f for f in fl if f not in pman or f not in pdoc)
        check(not missing, "profctl %s flags not in profctl.1 or "
              "docs/profctl.md: %r" % (cmd, missing))
