"""Shared settings for the Python client suite.

The Rust test `tests/tests/python_clients.rs` starts a proxy and the testhub
app server and runs this suite with `APP_URL` pointing at the app server.
"""

import os

import pytest


@pytest.fixture(scope="session")
def app_url() -> str:
    url = os.environ.get("APP_URL")
    if not url:
        pytest.fail("APP_URL is not set: run this suite through `cargo test --test python_clients`")
    return url


PROTOCOLS = [p for p in os.environ.get("PROTOCOLS", "json").split(",") if p]
