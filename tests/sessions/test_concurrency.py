"""Races on one user's sessions, with real threads against the real Redis."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted

from django_rediskit.sessions import count_devices, list_devices, revoke_all
from django_rediskit.sessions.backend import SessionStore
from django_rediskit.sessions.index import data_key, session_backend
from tests.sessions.conftest import index_fields

pytestmark = pytest.mark.django_db
TRIALS = 1000


class Pair:
    """Two long-lived threads that run one job each per trial, released together."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []
        self.start = threading.Barrier(3)
        self.done = threading.Barrier(3)
        self.errors: list[BaseException] = []
        self.stop = False
        self.threads = [threading.Thread(target=self._work, args=(i,)) for i in range(2)]
        for thread in self.threads:
            thread.start()

    def _work(self, index: int) -> None:
        while True:
            self.start.wait()
            if self.stop:
                return
            try:
                self.jobs[index]()
            except BaseException as exc:  # surfaced by run()
                self.errors.append(exc)
            self.done.wait()

    def run(self, first: Callable[[], None], second: Callable[[], None]) -> None:
        self.jobs = [first, second]
        self.start.wait()
        self.done.wait()
        if self.errors:
            raise self.errors[0]

    def close(self) -> None:
        self.stop = True
        self.start.wait()
        for thread in self.threads:
            thread.join()


def authenticated_session(uid: str) -> str:
    store = SessionStore()
    store["_auth_user_id"] = uid
    store.save()
    assert store.session_key is not None
    return store.session_key


def test_revoke_all_racing_save_never_resurrects(make_user: Any, rclient: Any) -> None:
    user = make_user()
    uid = str(user.pk)
    backend = session_backend()
    pair = Pair()
    outcomes = {"saved_first": 0, "interrupted": 0}
    try:
        for trial in range(TRIALS):
            key = authenticated_session(uid)
            in_flight = SessionStore(key)
            assert in_flight.get("_auth_user_id") == uid  # loaded before the race

            def save(store: SessionStore = in_flight, n: int = trial) -> None:
                store["n"] = n
                try:
                    store.save()
                    outcomes["saved_first"] += 1
                except UpdateError:
                    outcomes["interrupted"] += 1

            pair.run(save, lambda: revoke_all(user))
            assert not rclient.exists(data_key(backend, key)), f"resurrected in trial {trial}"
            assert SessionStore(key).load() == {}
    finally:
        pair.close()
    assert count_devices(user) == 0
    assert outcomes["saved_first"] + outcomes["interrupted"] == TRIALS


def test_revoke_all_racing_rotation_never_resurrects(make_user: Any, rclient: Any) -> None:
    user = make_user()
    uid = str(user.pk)
    backend = session_backend()
    pair = Pair()
    survivors: list[str] = []
    try:
        for _ in range(200):
            store = SessionStore(authenticated_session(uid))
            store.get("_auth_user_id")

            def rotate(store: SessionStore = store) -> None:
                try:
                    store.cycle_key()
                except SessionInterrupted:
                    return
                survivors.append(store.session_key or "")

            pair.run(rotate, lambda: revoke_all(user))
            for key in survivors:
                assert not rclient.exists(data_key(backend, key))
            survivors.clear()
    finally:
        pair.close()
    assert count_devices(user) == 0


def test_threads_logging_in_and_saving_keep_index_consistent(make_user: Any, rclient: Any) -> None:
    user = make_user()
    uid = str(user.pk)
    backend = session_backend()
    keys: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            key = authenticated_session(uid)
            store = SessionStore(key)
            store["x"] = 1
            store.save()
            with lock:
                keys.append(key)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert index_fields(rclient, uid) == sorted(key.encode() for key in keys)
    assert {device.device_id for device in list_devices(user)}.__len__() == 100
    assert revoke_all(user) == 100
    assert not any(rclient.exists(data_key(backend, key)) for key in keys)
