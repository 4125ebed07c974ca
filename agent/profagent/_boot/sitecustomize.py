"""Attaches profagent at start-up when PROFAGENT_AUTO=1 (set by
`python -m profagent run`), then runs the sitecustomize this one shadows.
Never breaks the host: any failure is one line on stderr."""

import os
import sys


def _profagent_tag():
    """This Python's build directory name (as agent/_build/pytag.py)."""
    import hashlib
    import sysconfig
    key = "\0".join((os.path.realpath(sys.executable),
                     sysconfig.get_paths()["include"], sys.version))
    return "python%d.%d-%s" % (sys.version_info[0], sys.version_info[1],
                               hashlib.sha1(key.encode()).hexdigest()[:8])


def _profagent_import():
    """Imports profagent; if the one on the path was built for another
    Python, tries its sibling build directory for this one (build/python3.X-H
    next to build/python3.Y-H), so one `run` covers mixed interpreters."""
    try:
        import profagent
        return profagent
    except ImportError as e:
        err = e
    want = _profagent_tag()
    for p in list(sys.path):
        top = os.path.abspath(p or os.curdir)
        if not os.path.isfile(os.path.join(top, "profagent", "__init__.py")):
            continue
        cand = os.path.join(os.path.dirname(top), want)
        if cand != top and os.path.isdir(os.path.join(cand, "profagent")):
            for name in [m for m in sys.modules
                         if m == "profagent" or m.startswith("profagent.")]:
                del sys.modules[name]
            sys.path.insert(sys.path.index(p), cand)
            import profagent
            return profagent
        break
    raise err


def _profagent_attach(module_code):
    if os.environ.get("PROFAGENT_AUTO") != "1":
        return
    try:
        profagent = _profagent_import()
    except ImportError as e:
        sys.stderr.write("profagent: not attached: %s\n" % (e,))
        return
    try:
        # The host's own sitecustomize runs under this file's frames.
        profagent._hide(module_code, _profagent_import, _profagent_attach,
                        _profagent_chain)
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


_profagent_attach(sys._getframe().f_code)
_profagent_chain()
