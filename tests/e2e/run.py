"""run.py -- runs the end-to-end tests for one interpreter.

  run.py --python PATH --agent-dir DIR [--once] [--sanitize] [-k SUBSTR]

Prints one line a test and ends with 'N passed, N failed'.
"""
import argparse
import importlib
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def collect():
    here = os.path.dirname(os.path.abspath(__file__))
    tests = []
    for name in sorted(os.listdir(here)):
        if name.startswith("test_") and name.endswith(".py"):
            mod = importlib.import_module(name[:-3])
            for attr in sorted(dir(mod)):
                fn = getattr(mod, attr)
                if attr.startswith("test_") and callable(fn):
                    tests.append((name[:-3], attr, fn))
    return tests


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--python", required=True)
    p.add_argument("--agent-dir", required=True)
    p.add_argument("--label", default="")
    p.add_argument("--once", action="store_true",
                   help="also run the tests that do not depend on the interpreter")
    p.add_argument("--sanitize", action="store_true")
    p.add_argument("-k", default="")
    a = p.parse_args()
    passed = failed = 0
    for mod, name, fn in collect():
        if getattr(fn, "once", False) and not a.once:
            continue
        full = "%s.%s" % (mod, name)
        if a.k and a.k not in full:
            continue
        ctx = harness.Ctx(a.python, os.path.abspath(a.agent_dir), a.sanitize)
        t0 = time.monotonic()
        try:
            fn(ctx)
            passed += 1
            print("PASS %s [%s] (%.1fs)" % (full, a.label, time.monotonic() - t0),
                  flush=True)
        except Exception as e:
            failed += 1
            print("FAIL %s [%s] (%.1fs): %s" % (full, a.label,
                  time.monotonic() - t0, e), flush=True)
            if not isinstance(e, harness.TestFailure):
                traceback.print_exc()
            tail = ctx.log_tail()
            if tail:
                print("  profd log:\n    " + tail.replace("\n", "\n    "))
        finally:
            ctx.close()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
