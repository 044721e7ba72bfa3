"""lu_payloads.protocol: length-prefixed JSON frames."""

from __future__ import annotations

import struct
import threading

import pytest

from lu_payloads import protocol


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"v": 2, "id": 7, "op": "status", "args": {"ids": [1, 2], "deep": {"x": None, "y": True}}},
        {"text": "caf\u00e9 \u65e5\u672c \U0001f600", "nul": "\x00", "float": 1.5, "negative": -3},
    ],
)
def test_encode_decode_round_trip(message):
    frame = protocol.encode(message)
    (size,) = struct.unpack(">I", frame[:4])
    assert size == len(frame) - 4
    assert protocol.decode(frame[4:]) == message


def test_values_json_cannot_hold_are_sent_as_their_repr():
    class Odd:
        def __repr__(self):
            return "<odd>"

    assert protocol.decode(protocol.encode({"value": Odd()})[4:]) == {"value": "<odd>"}


def test_send_and_recv_over_a_socket(pair):
    ours, theirs = pair
    big = {"id": 2, "big": "x" * 3_000_000}  # more than the socket buffer and than one recv()
    sender = threading.Thread(target=lambda: [protocol.send(ours, {"id": 1}), protocol.send(ours, big)])
    sender.start()
    try:
        assert protocol.recv(theirs) == {"id": 1}
        assert protocol.recv(theirs) == big
    finally:
        sender.join(5)


def test_a_message_too_large_is_not_sent(pair):
    ours, theirs = pair
    with pytest.raises(protocol.FrameTooLarge) as caught:
        protocol.send(ours, {"blob": "x" * protocol.MAX_FRAME})
    assert caught.value.size > protocol.MAX_FRAME
    theirs.setblocking(False)
    with pytest.raises(BlockingIOError):  # not one byte went out
        theirs.recv(1)


@pytest.mark.parametrize(
    "announced, limit",
    [
        (protocol.MAX_FRAME + 1, protocol.MAX_FRAME),
        (protocol.MAX_HELLO + 1, protocol.MAX_HELLO),
        (2**32 - 1, protocol.MAX_FRAME),
    ],
)
def test_an_announced_frame_over_the_limit_is_refused_before_reading_it(pair, announced, limit):
    ours, theirs = pair
    ours.sendall(struct.pack(">I", announced))  # and no body: the reader must not wait for one
    with pytest.raises(protocol.FrameTooLarge) as caught:
        protocol.recv(theirs, limit=limit)
    assert caught.value.size == announced
    assert str(limit) in str(caught.value)


def test_a_frame_of_exactly_the_limit_is_read(pair):
    ours, theirs = pair
    frame = protocol.encode({"k": "v" * 20})
    ours.sendall(frame)
    assert protocol.recv(theirs, limit=len(frame) - 4) == {"k": "v" * 20}


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # closed before anything
        b"\x00\x00",  # in the middle of the header
        struct.pack(">I", 10) + b'{"a":',  # in the middle of the body
    ],
    ids=["before-anything", "mid-header", "mid-body"],
)
def test_a_connection_closed_mid_frame(pair, sent):
    ours, theirs = pair
    ours.sendall(sent)
    ours.close()
    with pytest.raises(protocol.ConnectionClosed):
        protocol.recv(theirs)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    ],
)
def test_deep_nesting_is_a_value_error(body):
    with pytest.raises(ValueError, match="nested too deeply"):
        protocol.decode(body)


def test_a_message_json_cannot_hold_is_one_error_of_its_own():
    deep: dict = {}
    inner = deep
    for _ in range(100_000):
        inner["a"] = {}
        inner = inner["a"]
    cyclic: dict = {}
    cyclic["self"] = cyclic
    for message in (deep, cyclic):
        with pytest.raises(protocol.NotEncodable):
            protocol.encode(message)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"3", b"null", b"true"])
def test_only_a_json_object_is_a_message(body):
    with pytest.raises(ValueError, match="must be a JSON object"):
        protocol.decode(body)


@pytest.mark.parametrize("body", [b"{", b"not json", b"\xff\xfe{}"])
def test_undecodable_bodies_are_value_errors(body):
    with pytest.raises(ValueError):  # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors
        protocol.decode(body)


def test_hello_message_shape():
    assert protocol.hello(pid=42, start_ticks=9000, uid=1000, agent_version="0.1.0", python="3.11.7") == {
        "v": protocol.PROTOCOL_VERSION,
        "hello": {"pid": 42, "start_ticks": 9000, "uid": 1000, "agent_version": "0.1.0", "python": "3.11.7"},
    }
    assert protocol.PROTOCOL_VERSION == 2
