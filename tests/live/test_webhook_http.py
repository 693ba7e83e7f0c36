"""The webhook sender's HTTP client (app/events/http_post.py) against real receivers on
loopback: connections kept and reused, answers of every framing, a kept connection the
receiver closed, an answer too long to keep its connection, and TLS to the checked
address with the host name as the server name and in the certificate check."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.events import http_post
from app.events.http_post import KeptConnections
from app.events.url_guard import Target

LOOPBACK = ipaddress.ip_address("127.0.0.1")


class Receiver:
    """An HTTP/1.1 receiver: each request gets the next answer of `answers` (raw bytes, or
    None to close the connection without answering, or a tuple of parts written 50 ms apart;
    an HTTP/1.0 answer or one saying `connection: close` closes it after); it records what
    came, per connection."""

    def __init__(self, *answers: bytes | tuple[bytes, ...] | None) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[int, bytes, bytes]] = []  # (connection number, head, body)
        self.connections = 0
        self.server_names: list[str | None] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
                self.requests.append((number, head, body))
                answer = self.answers.pop(0) if self.answers else ok(b"ok")
                if answer is None:
                    return
                parts = answer if isinstance(answer, tuple) else (answer,)
                for n, part in enumerate(parts):
                    if n:
                        await asyncio.sleep(0.05)
                    writer.write(part)
                    await writer.drain()
                answer = b"".join(parts)
                if answer.startswith(b"HTTP/1.0") or b"connection: close" in answer:
                    return  # the answer ends with the connection
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=ssl_context)
        return self.server.sockets[0].getsockname()[1]


def ok(body: bytes, status: str = "200 OK", close: bool = False) -> bytes:
    connection = b"connection: close\r\n" if close else b""
    return f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n".encode() + connection + b"\r\n" + body


def target(port: int, host: str = "receiver.example", scheme: str = "http", path: str = "/hook?team=1") -> Target:
    return Target(url=f"{scheme}://{host}:{port}{path}", scheme=scheme, host=host, port=port, address=LOOPBACK)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_messages_to_one_receiver_share_a_kept_connection_and_the_request_is_whole():
    async def scenario():
        receiver = Receiver(ok(b"x" * 5000), ok(b"second"), ok(b""))
        port = await receiver.start()
        client = KeptConnections("QR-Contact-Webhooks/test")
        answers = [await client.post(target(port), {"webhook-id": f"msg_{n}"}, b'{"n": %d}' % n) for n in range(3)]
        await client.close()
        receiver.server.close()
        return receiver, port, answers

    receiver, port, answers = run(scenario())
    assert [a.status for a in answers] == [200, 200, 200]
    assert answers[0].first_bytes == b"x" * 1024 and answers[1].first_bytes == b"second"
    assert receiver.connections == 1 and [number for number, _, _ in receiver.requests] == [1, 1, 1]
    head, body = receiver.requests[0][1], receiver.requests[0][2]
    assert head.startswith(b"POST /hook?team=1 HTTP/1.1\r\n")
    assert f"host: receiver.example:{port}\r\n".encode() in head
    assert b"webhook-id: msg_0\r\n" in head and b"content-length: 8\r\n" in head and body == b'{"n": 0}'


def posted_one_after_another(scripts: list, count: int) -> tuple[Receiver, list]:
    """`count` messages posted one after another to a Receiver answering `scripts`: the
    receiver and the answers."""

    async def scenario():
        receiver = Receiver(*scripts)
        port = await receiver.start()
        client = KeptConnections("test")
        answers = [await client.post(target(port), {}, b"{}") for _ in range(count)]
        await client.close()
        receiver.server.close()
        return receiver, answers

    return run(scenario())


def test_chunked_and_close_delimited_answers_are_read_and_a_closing_one_is_not_kept():
    chunked = b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    until_close = b"HTTP/1.0 202 Accepted\r\n\r\nuntil the end"

    receiver, answers = posted_one_after_another([chunked, ok(b"bye", close=True), until_close, ok(b"new")], 4)
    assert [(a.status, a.first_bytes) for a in answers] == [
        (201, b"abcde"), (200, b"bye"), (202, b"until the end"), (200, b"new")]
    # The chunked answer kept its connection for the second; `connection: close` and the
    # answer ending with its connection each made the next message open a new one.
    assert [number for number, _, _ in receiver.requests] == [1, 1, 2, 3]


def test_an_interim_answer_is_passed_over_for_the_answer_that_follows_it():
    """A 100 Continue or 103 Early Hints, read alone, is not the answer: the one after it is,
    and the connection stays in step for the next message."""
    interim = (b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n", ok(b"first", "201 Created"))

    receiver, answers = posted_one_after_another([interim, ok(b"second", "202 Accepted")], 2)
    assert [(a.status, a.first_bytes) for a in answers] == [(201, b"first"), (202, b"second")]
    assert receiver.connections == 1


def test_connections_past_the_kept_number_and_idle_ones_are_closed(monkeypatch):
    monkeypatch.setattr(http_post, "KEEP_PER_RECEIVER", 2)
    monkeypatch.setattr(http_post, "KEEP_IDLE", 0.2)

    async def scenario():
        receiver, other = Receiver(), Receiver()
        port, other_port = await receiver.start(), await other.start()
        client = KeptConnections("test")
        await asyncio.gather(*(client.post(target(port), {}, b"{}") for _ in range(4)))  # four at once: four connections
        kept = client._idle[(target(port).scheme, LOOPBACK, port, "receiver.example")]
        assert len(kept) == 2
        await asyncio.sleep(0.3)
        await client.post(target(other_port), {}, b"{}")  # a message elsewhere sweeps the idle ones
        assert list(client._idle) == [("http", LOOPBACK, other_port, "receiver.example")]
        await client.close()
        receiver.server.close()
        other.server.close()
        return receiver

    receiver = run(scenario())
    assert receiver.connections == 4


def test_a_kept_connection_the_receiver_closed_sends_the_message_again_on_a_new_one():
    async def scenario():
        receiver = Receiver(ok(b"first"), None, ok(b"again"))  # the second request finds its connection closing
        port = await receiver.start()
        client = KeptConnections("test")
        first = await client.post(target(port), {"webhook-id": "msg_1"}, b"{}")
        second = await client.post(target(port), {"webhook-id": "msg_2"}, b"{}")
        await client.close()
        receiver.server.close()
        return receiver, first, second

    receiver, first, second = run(scenario())
    assert (first.status, second.status, second.first_bytes) == (200, 200, b"again")
    # At least once: msg_2 reached the receiver on the closing connection, then on a new one.
    assert [(number, b"msg_2" in head) for number, head, _ in receiver.requests] == [(1, False), (1, True), (2, True)]


def test_a_refused_connection_and_a_garbled_answer_are_errors():
    async def scenario():
        receiver = Receiver(b"SMTP ready\r\n\r\n")
        port = await receiver.start()
        client = KeptConnections("test")
        with pytest.raises(ValueError, match="not HTTP"):
            await client.post(target(port), {}, b"{}")
        receiver.server.close()
        await receiver.server.wait_closed()
        with pytest.raises(OSError):
            await client.post(target(port), {}, b"{}")
        await client.close()

    run(scenario())


def test_an_answer_too_long_to_read_closes_its_connection():
    async def scenario():
        receiver = Receiver(ok(b"y" * 200_000), ok(b"next"))
        port = await receiver.start()
        client = KeptConnections("test")
        long = await client.post(target(port), {}, b"{}")
        after = await client.post(target(port), {}, b"{}")
        await client.close()
        receiver.server.close()
        return receiver, long, after

    receiver, long, after = run(scenario())
    assert long.status == 200 and long.first_bytes == b"y" * 1024 and after.first_bytes == b"next"
    assert receiver.connections == 2


def certificate_for(name: str, folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_over_tls_the_checked_address_is_reached_with_the_host_name_as_server_name_and_in_the_certificate(tmp_path):
    cert_file, key_file = certificate_for("hooks.example", tmp_path)

    async def scenario():
        receiver = Receiver()
        server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_side.load_cert_chain(cert_file, key_file)
        server_side.sni_callback = lambda sock, name, context: receiver.server_names.append(name)
        port = await receiver.start(server_side)
        trusting = ssl.create_default_context(cafile=str(cert_file))  # the receiver's certificate, trusted
        client = KeptConnections("test", ssl_context=trusting)
        answer = await client.post(target(port, host="hooks.example", scheme="https"), {}, b"{}")
        # The same address under another name: the certificate is not that name's.
        with pytest.raises(ssl.SSLCertVerificationError):
            await client.post(target(port, host="other.example", scheme="https"), {}, b"{}")
        await client.close()
        receiver.server.close()
        return receiver, answer

    receiver, answer = run(scenario())
    assert answer.status == 200
    assert receiver.server_names[0] == "hooks.example"
    assert b"host: hooks.example:" in receiver.requests[0][1]
