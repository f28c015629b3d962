"""Ctrl-C and the termination signals: held while a run saves, raised in its iterations."""

import os
import signal
import threading

import pytest

from sgdlab.interrupts import interrupt_on_termination, interrupts_allowed, interrupts_deferred


def ctrl_c(signum=signal.SIGINT):
    os.kill(os.getpid(), signum)


def test_a_held_interrupt_is_raised_on_entering_the_allowed_stretch():
    with interrupts_deferred() as held:
        ctrl_c()
        assert held()  # held, not raised
        with pytest.raises(KeyboardInterrupt, match="SIGINT"):
            with interrupts_allowed():
                raise AssertionError("the held interrupt is raised before anything runs")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the usual handler is back


def test_in_the_allowed_stretch_an_interrupt_raises_at_once_and_outside_it_is_held_again():
    with interrupts_deferred() as held:
        with pytest.raises(KeyboardInterrupt):
            with interrupts_allowed():
                ctrl_c(signal.SIGTERM)
                raise AssertionError("not reached")
        assert not held()
        ctrl_c()
        assert held()


def test_a_nested_deferral_is_the_outer_one():
    with interrupts_deferred() as outer:
        with interrupts_deferred() as inner:
            ctrl_c()
        assert inner() and outer()  # the inner one ending did not raise it


def test_termination_signals_raise_keyboard_interrupt_and_the_old_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGHUP"):
        with interrupt_on_termination():
            ctrl_c(signal.SIGHUP)
            raise AssertionError("not reached")
    assert signal.getsignal(signal.SIGTERM) is before


def test_outside_the_main_thread_nothing_changes():
    errors = []

    def elsewhere():
        try:
            with interrupts_deferred() as held, interrupts_allowed(), interrupt_on_termination():
                assert not held()
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert errors == []
