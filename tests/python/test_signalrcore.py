"""signalrcore (threads) against Switchboard through the testhub redirect."""

import queue
import threading
import uuid

import pytest
from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.protocol.json_hub_protocol import JsonHubProtocol
from signalrcore.protocol.messagepack_protocol import MessagePackHubProtocol

from conftest import PROTOCOLS

TIMEOUT = 10


def connect(url: str, proto: str):
    hub_protocol = JsonHubProtocol() if proto == "json" else MessagePackHubProtocol()
    connection = HubConnectionBuilder().with_url(url).with_hub_protocol(hub_protocol).build()
    received: queue.Queue = queue.Queue()
    opened = threading.Event()
    connection.on("Receive", lambda args: received.put(args))
    connection.on_open(opened.set)
    connection.start()
    assert opened.wait(TIMEOUT), "the connection did not open"
    return connection, received


def invoke(connection, method: str, args: list):
    answers: queue.Queue = queue.Queue()
    connection.send(method, args, lambda message: answers.put(message))
    return answers.get(timeout=TIMEOUT)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_invoke_and_receive(app_url, proto):
    connection, received = connect(f"{app_url}/testhub?user=core-{uuid.uuid4().hex[:8]}", proto)
    try:
        assert invoke(connection, "Echo", ["héllo ☃"]).result == "héllo ☃"
        connection.send("SendToCaller", ["to me"])
        assert received.get(timeout=TIMEOUT) == ["to me"]
    finally:
        connection.stop()


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_groups_and_users(app_url, proto):
    user = f"core-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    connection, received = connect(f"{app_url}/testhub?user={user}", proto)
    try:
        invoke(connection, "JoinGroup", [group])
        connection.send("SendToGroup", [group, "group message"])
        assert received.get(timeout=TIMEOUT) == ["group message"]
        connection.send("SendToUser", [user, "user message"])
        assert received.get(timeout=TIMEOUT) == ["user message"]
    finally:
        connection.stop()


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_server_to_client_stream(app_url, proto):
    connection, _ = connect(f"{app_url}/testhub", proto)
    try:
        items: list = []
        done = threading.Event()
        connection.stream("Stream", []).subscribe(
            {"next": items.append, "complete": lambda *a: done.set(), "error": lambda *a: done.set()}
        )
        assert done.wait(TIMEOUT), "the stream did not complete"
        assert items == ["a", "b", "c"]
    finally:
        connection.stop()
