"""Durable state Steward must not lose: the framework ID first of all (later: task records, overrides).

Losing the framework ID means re-registering as a new framework, which orphans every running task
(protocol brief, mistake 12), so it is written atomically and fsynced before anything else happens.
"""
