"""Prometheus metrics of a running Steward.

``framework.metrics.exporter`` (the only module that imports ``prometheus_client``) builds every
metric family at scrape time from the state snapshot, the driver's status, the autoscale loop and
the runtime's :class:`~framework.metrics.activity.Activity`; ``activity`` and ``usage`` hold what
happened and the executors' usage reports, in plain Python, so the runtime can record them without
importing the client library.
"""
