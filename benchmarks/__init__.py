"""queuectl's benchmark harness: `python -m benchmarks` from the repo root (see README.md).

Not part of the test suite: it measures this machine, it does not check behaviour.
"""
