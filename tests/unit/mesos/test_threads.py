"""ThreadGroup: the worker-thread bookkeeping the executor, executor host and containerizers share."""

from __future__ import annotations

import logging
import threading

import pytest

from framework.mesos.threads import ThreadGroup


def test_join_waits_for_every_thread_including_ones_started_meanwhile() -> None:
    group = ThreadGroup("test")
    release = threading.Event()
    finished: list[str] = []

    def second() -> None:
        release.wait(5)
        finished.append("second")

    def first() -> None:
        group.spawn(second, "second")
        finished.append("first")

    group.spawn(first, "first")
    threading.Timer(0.2, release.set).start()
    group.join(10.0)
    assert sorted(finished) == ["first", "second"]


def test_a_failing_thread_is_logged_reported_and_leaves_the_group(caplog: pytest.LogCaptureFixture) -> None:
    group = ThreadGroup("test owner")
    reported: list[str] = []

    def boom() -> None:
        raise RuntimeError("bad task")

    with caplog.at_level(logging.ERROR, logger="framework.mesos.threads"):
        thread = group.spawn(boom, "boom", lambda exc: reported.append(str(exc)))
        thread.join(5)
    assert reported == ["bad task"]
    assert "test owner thread boom failed" in caplog.text
    group.join(0.0)  # nothing left to wait for


def test_make_registers_a_thread_before_it_starts_and_join_gives_up_at_the_timeout() -> None:
    group = ThreadGroup("test")
    hold = threading.Event()
    thread = group.make(lambda: hold.wait(30), "held")
    assert thread.daemon and not thread.is_alive()
    thread.start()
    group.join(0.1)
    assert thread.is_alive(), "join returned at its timeout"
    hold.set()
    group.join(5.0)
    assert not thread.is_alive()
