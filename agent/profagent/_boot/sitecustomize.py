"""Attaches profagent at start-up when PROFAGENT_AUTO=1 (set by
`python -m profagent run`), then runs the sitecustomize this one shadows.
Never breaks the host: any failure is one line on stderr."""

import os
import sys


def _profagent_attach():
    if os.environ.get("PROFAGENT_AUTO") != "1":
        return
    try:
        import profagent
    except ImportError as e:
        sys.stderr.write("profagent: not attached (no agent built for Python "
                         "%d.%d: %s)\n" % (sys.version_info[0],
                                           sys.version_info[1], e))
        return
    try:
        profagent.attach()
    except Exception as e:
        sys.stderr.write("profagent: not attached: %s\n" % (e,))


def _profagent_chain():
    """Runs the next sitecustomize on sys.path, as if this one were not."""
    here = os.path.dirname(os.path.abspath(__file__))
    spec = None
    try:
        import importlib.machinery
        import importlib.util
        rest = []
        seen = False
        for p in sys.path:
            if not seen:
                seen = os.path.abspath(p or os.curdir) == here
                continue
            rest.append(p)
        if not seen:
            return
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
        if spec is None or spec.loader is None:
            return
        mod = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = mod
        spec.loader.exec_module(mod)
    except Exception as e:
        sys.stderr.write("profagent: error in sitecustomize %s: %s\n"
                         % (getattr(spec, "origin", "?"), e))


_profagent_attach()
_profagent_chain()
