"""Ctrl-C and the termination signals: held while a run trains and saves, taken between its iterations."""

import os
import signal
import threading

import pytest

from sgdlab.interrupts import absorb_further_interrupts, interrupt_on_termination, interrupts_deferred

pytestmark = pytest.mark.usefixtures("terminal_signals")  # as at a terminal, even under nohup or in the background


def ctrl_c(signum=signal.SIGINT):
    os.kill(os.getpid(), signum)


def test_a_held_signal_is_taken_once_and_the_usual_handler_comes_back():
    with interrupts_deferred() as pending:
        assert pending() is None
        ctrl_c()
        ctrl_c(signal.SIGTERM)
        assert pending() == "SIGINT"  # the first one, for both
        assert pending() is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_once_ending_a_second_press_changes_nothing_also_after_the_deferral_ends():
    with interrupts_deferred() as pending:
        ctrl_c()
        assert pending() == "SIGINT"  # taken: the program ends for it
        absorb_further_interrupts()
        ctrl_c()
        assert pending() is None
    ctrl_c()  # no KeyboardInterrupt: a program ending for the first press would end by this one, half closed
    ctrl_c(signal.SIGTERM)
    ctrl_c(signal.SIGHUP)


def test_a_nested_deferral_shares_the_outer_one():
    with interrupts_deferred() as outer:
        with interrupts_deferred():
            ctrl_c(signal.SIGHUP)
        assert outer() == "SIGHUP"  # the inner one ending neither raised nor dropped it


def test_termination_signals_raise_keyboard_interrupt_and_the_old_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGHUP"):
        with interrupt_on_termination():
            ctrl_c(signal.SIGHUP)
            raise AssertionError("not reached")
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_ignored_signal_stays_ignored(monkeypatch):
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with interrupt_on_termination(), interrupts_deferred() as pending:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            ctrl_c(signal.SIGHUP)
            assert pending() is None
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_outside_the_main_thread_nothing_changes():
    errors = []

    def elsewhere():
        try:
            with interrupts_deferred() as pending, interrupt_on_termination():
                assert pending() is None
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert errors == []
