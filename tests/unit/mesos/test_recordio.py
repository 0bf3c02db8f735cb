"""The RecordIO decoder, fed whole, byte by byte and split anywhere (brief section 1.3)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.mesos.errors import LocalProtocolError, RemoteProtocolError
from framework.mesos.recordio import RecordIODecoder, encode

SUBSCRIBED = (
    b'{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"7c2a-0001"},'
    b'"heartbeat_interval_seconds":15.0}}'
)
HEARTBEAT = b'{"type":"HEARTBEAT"}'


def test_the_brief_example_stream_decodes_into_its_two_records() -> None:
    stream = b"107\n" + SUBSCRIBED + b"20\n" + HEARTBEAT
    assert len(SUBSCRIBED) == 107
    decoder = RecordIODecoder()
    assert decoder.feed(stream) == [SUBSCRIBED, HEARTBEAT]
    assert decoder.buffered == 0
    assert decoder.at_record_boundary


def test_encode_prefixes_the_byte_count_and_nothing_else() -> None:
    assert encode(HEARTBEAT) == b"20\n" + HEARTBEAT
    assert encode(b"x") == b"1\nx"


def test_encode_refuses_an_empty_record() -> None:
    with pytest.raises(LocalProtocolError):
        encode(b"")


def test_byte_by_byte_feeding_yields_each_record_exactly_when_its_last_byte_arrives() -> None:
    records = [SUBSCRIBED, HEARTBEAT, b"{}", HEARTBEAT]
    stream = b"".join(encode(r) for r in records)
    decoder = RecordIODecoder()
    out: list[bytes] = []
    ends = set()
    position = 0
    for record in records:
        position += len(encode(record))
        ends.add(position)
    for index in range(len(stream)):
        got = decoder.feed(stream[index : index + 1])
        if index + 1 in ends:
            assert len(got) == 1
        else:
            assert got == []
        out.extend(got)
    assert out == records
    assert decoder.buffered == 0


def test_the_length_counts_utf8_bytes_not_characters() -> None:
    record = json.dumps({"message": "école ñ 漢字 🚀"}, ensure_ascii=False).encode()
    assert len(record) > len(record.decode())
    framed = encode(record)
    assert framed.startswith(b"%d\n" % len(record))
    decoder = RecordIODecoder()
    # Split inside a multibyte character: the decoder works on bytes, so this must not matter.
    cut = framed.index("漢".encode()) + 1
    assert decoder.feed(framed[:cut]) == []
    assert decoder.feed(framed[cut:]) == [record]
    assert json.loads(record)["message"] == "école ñ 漢字 🚀"


def test_a_truncated_trailing_record_stays_buffered_until_the_rest_arrives() -> None:
    decoder = RecordIODecoder()
    stream = encode(HEARTBEAT) + encode(SUBSCRIBED)
    cut = len(encode(HEARTBEAT)) + 10
    assert decoder.feed(stream[:cut]) == [HEARTBEAT]
    assert decoder.buffered == 10
    assert not decoder.at_record_boundary
    assert decoder.feed(b"") == []
    assert decoder.buffered == 10
    assert decoder.feed(stream[cut:]) == [SUBSCRIBED]
    assert decoder.buffered == 0


def test_a_partial_length_prefix_stays_buffered() -> None:
    decoder = RecordIODecoder()
    assert decoder.feed(b"2") == []
    assert decoder.buffered == 1
    assert decoder.feed(b"0") == []
    assert decoder.feed(b"\n" + HEARTBEAT[:5]) == []
    assert decoder.feed(HEARTBEAT[5:]) == [HEARTBEAT]


def test_many_small_records_in_one_feed_come_out_in_order() -> None:
    records = [b'{"n":%d}' % i for i in range(20_000)]
    decoder = RecordIODecoder()
    assert decoder.feed(b"".join(encode(r) for r in records)) == records
    assert decoder.buffered == 0


def test_a_partial_record_survives_the_buffer_compaction_after_many_records() -> None:
    records = [b'{"n":%d}' % i for i in range(20_000)]
    tail = encode(SUBSCRIBED)
    decoder = RecordIODecoder()
    # The consumed front (well over the compaction threshold) is dropped while a record is half read.
    assert decoder.feed(b"".join(encode(r) for r in records) + tail[:50]) == records
    assert decoder.buffered == 50
    assert decoder.feed(tail[50:]) == [SUBSCRIBED]


def test_a_large_record_fed_in_small_pieces_is_reassembled() -> None:
    record = b"[" + b"1," * 200_000 + b"1]"
    framed = encode(record)
    decoder = RecordIODecoder()
    out: list[bytes] = []
    for start in range(0, len(framed), 4096):
        out.extend(decoder.feed(framed[start : start + 4096]))
    assert out == [record]


@pytest.mark.parametrize(
    "garbage",
    [
        b"\n{}",  # empty length
        b"abc\n{}",  # not a number
        b"+2\n{}",  # a sign int() would accept
        b"-2\n{}",
        b" 2\n{}",  # whitespace int() would accept
        b"2 \n{}",
        b"1_0\n0123456789",  # an underscore int() would accept
        "\uff12\n{}".encode(),  # a fullwidth digit int() would accept
        b"0\n",  # the format forbids empty records
        b'{"type":"HEARTBEAT"}',  # JSON where a length belongs (newline-delimited JSON)
    ],
)
def test_a_malformed_length_prefix_raises(garbage: bytes) -> None:
    decoder = RecordIODecoder()
    with pytest.raises(RemoteProtocolError):
        decoder.feed(garbage)


def test_a_long_prefix_without_newline_raises_before_the_newline_arrives() -> None:
    decoder = RecordIODecoder()
    assert decoder.feed(b"1" * 20) == []  # 20 digits may still be a valid 64-bit length
    with pytest.raises(RemoteProtocolError, match="longer than 20"):
        decoder.feed(b"1")


def test_garbage_in_a_partial_prefix_is_detected_without_waiting_for_a_newline() -> None:
    decoder = RecordIODecoder()
    with pytest.raises(RemoteProtocolError):
        decoder.feed(b"12x")


def test_an_oversized_record_is_refused_from_its_length_alone() -> None:
    decoder = RecordIODecoder(max_record_size=100)
    assert decoder.feed(encode(b"x" * 100)) == [b"x" * 100]
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        decoder.feed(b"101\n")


def test_after_an_error_the_decoder_keeps_raising() -> None:
    decoder = RecordIODecoder()
    with pytest.raises(RemoteProtocolError):
        decoder.feed(b"x\n")
    with pytest.raises(RemoteProtocolError, match="unusable"):
        decoder.feed(encode(HEARTBEAT))


def test_records_completed_before_a_framing_error_in_the_same_feed_are_lost_with_the_error() -> None:
    # The caller drops the connection on a framing error; the decoder does not pretend to recover.
    decoder = RecordIODecoder()
    with pytest.raises(RemoteProtocolError):
        decoder.feed(encode(HEARTBEAT) + b"zz\n")


def test_max_record_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RecordIODecoder(max_record_size=0)


@settings(deadline=None)  # wall-clock deadlines flake on a loaded machine; the property is what counts
@given(
    records=st.lists(st.binary(min_size=1, max_size=300), max_size=30),
    data=st.data(),
)
def test_any_records_encoded_and_split_anywhere_decode_to_the_same_list(
    records: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(encode(r) for r in records)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    decoder = RecordIODecoder()
    out: list[bytes] = []
    for piece in pieces:
        out.extend(decoder.feed(piece))
    assert out == records
    assert decoder.buffered == 0
