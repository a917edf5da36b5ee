"""`python -m selfplay.run` that SIGKILLs its own process group at the moment of its N-th atomic file
replace (env SELFPLAY_TEST_KILL_AT_WRITE=N): the temporary file is fully written and not yet renamed
into place. A test-only entry point for the kill-anywhere harness; the product has no such hook.

    python tests/integration/kill_at_write.py <hydra overrides...>
"""

import os
import runpy
import signal
import sys

_target = int(os.environ["SELFPLAY_TEST_KILL_AT_WRITE"])
_replace = os.replace
_seen = 0


def _replace_then_maybe_die(src, dst, *args, **kwargs):
    global _seen
    if ".tmp-" in os.fspath(src):
        _seen += 1
        if _seen == _target:
            sys.stderr.write(f"kill_at_write: killing at write {_seen}: {os.fspath(dst)}\n")
            sys.stderr.flush()
            os.killpg(os.getpgrp(), signal.SIGKILL)
    return _replace(src, dst, *args, **kwargs)


os.replace = _replace_then_maybe_die
sys.argv = ["selfplay.run", *sys.argv[1:]]
runpy.run_module("selfplay.run", run_name="__main__", alter_sys=True)
