"""The emulator's quick batch splitter reads every body it accepts exactly as the email parser does."""

from __future__ import annotations

from email.message import Message
from email.parser import BytesParser

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.google_batch import split_plain_parts

BOUNDARY_CHARS = st.sampled_from("abcXYZ019'()+_,./:=?-")
printable = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
names = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"), min_size=1,
                max_size=12)  # fmt: skip


def email_parts(ctype: str, body: bytes) -> list[tuple[str | None, str]]:
    msg = BytesParser().parsebytes(b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body)
    payload = msg.get_payload()
    assert isinstance(payload, list)
    return [(p.get("Content-ID"), p.get_payload()) for p in payload if isinstance(p, Message)]


@st.composite
def batches(draw: st.DrawFn) -> tuple[str, bytes]:
    boundary = draw(st.text(alphabet=BOUNDARY_CHARS, min_size=1, max_size=30))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    chunks = []
    for _ in range(draw(st.integers(1, 4))):
        headers = draw(st.lists(st.tuples(st.sampled_from(["Content-Type", "Content-ID", "content-id"]) | names,
                                          st.sampled_from(["", " ", "  ", "\t"]), printable), max_size=4))  # fmt: skip
        lines = [f"{k}:{space}{v}" for k, space, v in headers]
        payload = eol.join(draw(st.lists(printable, max_size=4)))
        chunks.append(eol.join(lines) + eol + eol + payload + draw(st.sampled_from(["", eol, eol + eol])))
    quoted = draw(st.booleans())
    ctype = f'multipart/mixed; boundary="{boundary}"' if quoted else f"multipart/mixed; boundary={boundary}"
    body = f"--{boundary}{eol}" + f"{eol}--{boundary}{eol}".join(chunks) + f"{eol}--{boundary}--"
    return ctype, (body + draw(st.sampled_from(["", eol]))).encode()


@settings(max_examples=300, deadline=None)
@given(batches())
def test_a_batch_the_splitter_accepts_is_read_as_the_email_parser_reads_it(batch: tuple[str, bytes]) -> None:
    ctype, body = batch
    quick = split_plain_parts(ctype, body)
    if quick is not None:
        assert quick == email_parts(ctype, body)


def test_the_clients_plain_shape_is_split_without_the_email_parser() -> None:
    part = "Content-Type: application/http\nMIME-Version: 1.0\nContent-ID: <a+1>\n\nGET /x?y=1 HTTP/1.1\nHost: h\n\n"
    body = f"--b\n{part}\n--b\n{part}\n--b--\n".encode()
    expected = [("<a+1>", "GET /x?y=1 HTTP/1.1\nHost: h\n\n")] * 2
    assert split_plain_parts('multipart/mixed; boundary="b"', body) == expected


def test_a_preamble_folded_headers_or_mixed_line_ends_go_to_the_email_parser() -> None:
    ctype = "multipart/mixed; boundary=b"
    assert split_plain_parts(ctype, b"hello\n--b\nA: 1\n\nx\n--b--\n") is None
    assert split_plain_parts(ctype, b"--b\nA: 1\n  folded\n\nx\n--b--\n") is None
    assert split_plain_parts(ctype, b"--b\r\nA: 1\n\nx\r\n--b--\r\n") is None
