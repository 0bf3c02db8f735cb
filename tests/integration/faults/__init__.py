"""Fault tests: Steward against the embedded local cluster while things break.

Steward is killed with SIGKILL in the middle of a scale-up and restarted on the same store, the
master fails over, agents are partitioned, come back or are removed for good, and the store stops
accepting writes. After each, the test checks what the issue promises: no task lost, none
duplicated, no orphan, and no kill before reconciliation.
"""
