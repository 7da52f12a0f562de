"""The local moto server keeps its request threads, and no silent client holds the others up."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from cloud.local.processes import MotoServer, free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MotoServer]:
    moto = MotoServer("moto", free_port(), tmp_path / "moto.log")
    moto.start(moto.ready)
    try:
        yield moto
    finally:
        moto.stop()


def _client(server: MotoServer) -> Any:
    return boto3.client(
        "dynamodb",
        region_name="eu-west-3",
        endpoint_url=server.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(connect_timeout=5, read_timeout=5, retries={"max_attempts": 1}),
    )


def test_clients_that_never_send_their_request_do_not_hold_up_the_others(
    server: MotoServer,
) -> None:
    port = int(server.endpoint.rsplit(":", 1)[1])
    # Each holds a request thread: werkzeug's handler waits for a request line that never comes.
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(6)]
    try:
        client = _client(server)
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        # 64 calls from 16 threads meanwhile: each one is answered within the client's timeout.
        with ThreadPoolExecutor(16) as pool:
            names = list(pool.map(lambda _: client.list_tables()["TableNames"], range(64)))
        assert names == [["t"]] * 64
    finally:
        for connection in silent:
            connection.close()
