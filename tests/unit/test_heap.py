"""A long-running process settles its heap after start-up (ops.heap): garbage collected first,
the rest frozen so that later full collections skip it. Run in a child interpreter: freezing the
test process's own heap would keep every later test's objects."""

import subprocess
import sys
import textwrap


def test_settling_collects_the_garbage_then_freezes_what_is_left() -> None:
    code = textwrap.dedent(
        """
        import gc, weakref
        from ops.heap import settle

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a          # a cycle only the collector frees
        gone = weakref.ref(a)
        del a, b
        kept = [Node() for _ in range(1000)]
        frozen = settle()
        assert gone() is None, "the cycle was frozen instead of collected"
        assert frozen == gc.get_freeze_count() > 1000
        assert gc.get_count()[0] < 50  # a collection just ran
        fresh = Node()
        assert gc.is_tracked(fresh) and frozen == gc.get_freeze_count()  # later objects are not frozen
        print("ok", frozen)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")
