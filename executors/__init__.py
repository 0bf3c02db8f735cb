"""The Steward executor: a Mesos custom executor that runs a service's container through Docker.

Modules: ``executor`` (the callbacks and each task's life), ``runner`` (TaskInfo -> Docker SDK
arguments, the engine calls, ownership labels), ``hooks`` (drain per kind), ``health`` (Mesos health
checks), ``usage`` (Docker stats -> usage MESSAGEs), ``spec`` (the ``TaskInfo.data`` format),
``bootstrap`` and ``build`` (the self-contained zipapp), ``__main__`` (the entry point).

Nothing is imported here: the zipapp's bootstrap imports this package before its compiled
dependency (msgspec) can be imported. See ``executors/README.md``.
"""
