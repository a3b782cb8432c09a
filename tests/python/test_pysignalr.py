"""pysignalr (asyncio) against Switchboard through the testhub redirect."""

import asyncio
import uuid

import pytest
from pysignalr.client import SignalRClient
from pysignalr.messages import CompletionMessage
from pysignalr.protocol.json import JSONProtocol
from pysignalr.protocol.messagepack import MessagepackProtocol

from conftest import PROTOCOLS

TIMEOUT = 10


def protocol(name: str):
    return JSONProtocol() if name == "json" else MessagepackProtocol()


async def session(url: str, proto: str, body):
    """Runs `body(client, received)` on an open connection; `received` is a
    queue of `Receive` arguments."""
    client = SignalRClient(url, protocol=protocol(proto), retry_count=1)
    received: asyncio.Queue = asyncio.Queue()
    opened = asyncio.Event()
    errors: asyncio.Queue = asyncio.Queue()

    async def on_receive(args):
        await received.put(args)

    async def on_open():
        opened.set()

    async def on_error(message: CompletionMessage):
        await errors.put(message.error)

    client.on("Receive", on_receive)
    client.on_open(on_open)
    client.on_error(on_error)
    runner = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(opened.wait(), TIMEOUT)
        await asyncio.wait_for(body(client, received, errors), TIMEOUT)
    finally:
        runner.cancel()
        try:
            await runner
        except (asyncio.CancelledError, Exception):
            pass


async def invoke(client: SignalRClient, method: str, args: list):
    done: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_completion(message: CompletionMessage):
        done.set_result(message)

    await client.send(method, args, on_completion)
    return await done


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_invoke_and_receive(app_url, proto):
    async def body(client, received, errors):
        result = await invoke(client, "Echo", ["héllo ☃"])
        assert result.result == "héllo ☃"
        await client.send("SendToCaller", ["to me"])
        assert await received.get() == ["to me"]

    asyncio.run(session(f"{app_url}/testhub?user=py-{uuid.uuid4().hex[:8]}", proto, body))


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_groups_and_users(app_url, proto):
    user = f"py-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"

    async def body(client, received, errors):
        await invoke(client, "JoinGroup", [group])
        await client.send("SendToGroup", [group, "group message"])
        assert await received.get() == ["group message"]
        await client.send("SendToUser", [user, "user message"])
        assert await received.get() == ["user message"]

    asyncio.run(session(f"{app_url}/testhub?user={user}", proto, body))


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_hub_errors_use_the_reference_text(app_url, proto):
    async def body(client, received, errors):
        await client.send("ThrowException", ["boom"], lambda m: asyncio.sleep(0))
        error = await errors.get()
        assert error == "An unexpected error occurred invoking 'ThrowException' on the server. HubException: boom"

    asyncio.run(session(f"{app_url}/testhub", proto, body))


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_server_to_client_stream(app_url, proto):
    async def body(client, received, errors):
        items: list = []
        done = asyncio.Event()

        async def on_next(item):
            items.append(item)

        async def on_complete(message):
            done.set()

        await client.stream("Stream", [], on_next, on_complete)
        await done.wait()
        assert items == ["a", "b", "c"]

    asyncio.run(session(f"{app_url}/testhub", proto, body))
