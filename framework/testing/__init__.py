"""Test helpers shipped with Steward: fakes and scripted servers that tests and examples reuse.

Nothing in ``framework`` outside this package may import it; it exists so that unit and integration
tests (and the executor's tests) share one well-tested fake instead of growing their own.
"""
