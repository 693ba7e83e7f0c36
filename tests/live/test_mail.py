"""The email outbox against a real SMTP server (aiosmtpd on loopback): verification mail,
delivery, retries with backoff, permanent failures, .eml files, restarts, and TLS (STARTTLS
and smtps against a certificate from a test CA)."""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
from datetime import UTC, datetime, timedelta

import pytest
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from app import mail
from app.accounts import emails
from app.cards.content import StructuredName
from app.cards.types import Card
from app.main import create_app
from app.sharing import sharing
from tests.support.app import PASSWORD, assert_problem, create_card, make_settings, register, unique_email
from tests.support.db import execute, query
from tests.support.mail import MailSink, html_part, text_part, wake_outbox
from tests.support.waiting import wait_until

TOKEN_IN_TEXT = re.compile(r"POST /v1/auth/verify-email instead: ([A-Za-z0-9_-]+)")


def failed_total() -> float:
    return REGISTRY.get_sample_value("queue_jobs_failed_total", {"queue": "email"}) or 0.0


def verification_token(message) -> str:
    return TOKEN_IN_TEXT.search(text_part(message)).group(1)


def test_registration_sends_a_verification_email_with_text_and_html(mail_client, mail_settings, smtp):
    body = register(mail_client, "Verify.Me@example.com")
    [message] = smtp.wait_for(1)
    assert smtp.received[0][2] == ["Verify.Me@example.com"]
    assert message["From"] == mail_settings.mail_from
    assert message["To"] == "Verify.Me@example.com"
    assert message["Subject"] == "Confirm your email address"
    assert message.get_content_type() == "multipart/alternative"
    token = verification_token(message)
    link = f"{mail_settings.public_base_url}/verify-email?token={token}"
    assert link in text_part(message) and link in html_part(message)
    # Stored hashed only.
    stored = query(mail_settings, "SELECT token_hash, expires_at, created_at FROM email_verifications")
    assert len(stored) == 1 and token not in stored[0][0]
    expires, created = (datetime.fromisoformat(t) for t in stored[0][1:])
    assert expires - created == timedelta(hours=48)
    # The outbox keeps the Message-ID and drops the message (it carried the token).
    wait_until(lambda: query(mail_settings, "SELECT 1 FROM email_outbox WHERE status = 'sent'"), what="the job marked sent")
    assert query(mail_settings, "SELECT message_id, status, message FROM email_outbox") == [(message["Message-ID"], "sent", None)]
    assert body["user"]["emailVerified"] is False


def test_verify_email_marks_the_account_verified_once(mail_client, smtp):
    user = register(mail_client)
    token = verification_token(smtp.wait_for(1)[0])
    assert mail_client.post("/v1/auth/verify-email", json={"token": token}).status_code == 204
    assert mail_client.get("/v1/me", headers=user["headers"]).json()["emailVerified"] is True
    problem = assert_problem(mail_client.post("/v1/auth/verify-email", json={"token": token}), 422)
    assert problem["errors"][0]["field"] == "token"


def test_an_expired_verification_token_is_refused(mail_client, mail_settings, smtp):
    user = register(mail_client)
    token = verification_token(smtp.wait_for(1)[0])
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    execute(mail_settings, "UPDATE email_verifications SET expires_at = ?", (past,))
    assert_problem(mail_client.post("/v1/auth/verify-email", json={"token": token}), 422)
    assert mail_client.get("/v1/me", headers=user["headers"]).json()["emailVerified"] is False


def test_the_emailed_link_opens_a_page_whose_button_verifies(mail_client, smtp):
    user = register(mail_client)
    token = verification_token(smtp.wait_for(1)[0])
    # Opening the link (or a mail scanner fetching it) verifies nothing yet.
    page = mail_client.get(f"/verify-email?token={token}")
    assert page.status_code == 200 and f'value="{token}"' in page.text
    assert "form-action 'self'" in page.headers["content-security-policy"]
    assert mail_client.get("/v1/me", headers=user["headers"]).json()["emailVerified"] is False
    done = mail_client.post("/verify-email", data={"token": token})
    assert done.status_code == 200 and "Email confirmed" in done.text
    assert mail_client.get("/v1/me", headers=user["headers"]).json()["emailVerified"] is True
    again = mail_client.post("/verify-email", data={"token": token})
    assert again.status_code == 400 and "already used" in again.text
    assert mail_client.get("/verify-email?token=<script>").status_code == 400


def allowed_by_its_csp(response) -> bool:
    """Whether the page's one inline stylesheet is the one its CSP allows by hash."""
    [style] = re.findall(r"<style>(.*?)</style>", response.text, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return f"style-src 'sha256-{digest}'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("token", ["A" * 43, "not-a-token"])
def test_the_verification_page_allows_exactly_its_own_style(client, token):
    page = client.get(f"/verify-email?token={token}")
    assert page.status_code == (200 if len(token) == 43 else 400)
    assert allowed_by_its_csp(page) and "button.save{" in page.text
    assert page.headers["cache-control"] == "no-store" and '<meta name="robots" content="noindex">' in page.text
    assert ('<input type="hidden" name="token"' in page.text) == (page.status_code == 200)


def test_the_emails_html_parts_escape_every_value(settings):
    """Names and messages with markup read as text in every layout: the invitation's and the link emails'."""
    card = Card(
        id=1, card_id="c", user_id="u", slug="ann-lee", full_name="Ann <b>Lee</b>", organization="O'Reilly & <i>Co</i>",
        title=None, email="ann@example.com", phone=None, website=None, qr_error_correction="M", qr_size=10,
        created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z", view_count=0, scan_count=0, save_count=0,
        name=StructuredName(given="Ann", family="Lee"), pronouns=None, headline=None, department=None, phones=(), emails=(),
        addresses=(), links=(), socials=(), accent_color=None,
    )
    shared = html_part(
        sharing.invitation_email(settings, card, "bo@example.com", "tok", 'Hi <script>x</script> "you"', "ann@example.com")
    )
    assert "<b>" not in shared and "<i>" not in shared and "<script>" not in shared
    assert "<strong>Ann &lt;b&gt;Lee&lt;/b&gt;</strong> shared" in shared
    assert ">O&#39;Reilly &amp; &lt;i&gt;Co&lt;/i&gt;</p>" in shared
    assert "Hi &lt;script&gt;x&lt;/script&gt; &#34;you&#34;</blockquote>" in shared
    assert '<a href="https://qr.example.test/i/tok"' in shared and 'src="https://qr.example.test/i/tok/open.gif"' in shared
    linked = emails.link_email(
        settings, to="bo@example.com", subject="S", lines=["<b>one</b>", "two & three"],
        link='https://qr.example.test/x?a=1&b="2"', button="<Go>", footer="<small>",
    )
    body = html_part(linked)
    assert "<p>&lt;b&gt;one&lt;/b&gt;</p>" in body and "<p>two &amp; three</p>" in body
    assert 'href="https://qr.example.test/x?a=1&amp;b=&#34;2&#34;"' in body and ">&lt;Go&gt;</a>" in body
    assert ">&lt;small&gt;</p>" in body
    assert text_part(linked) == '<b>one</b>\n\ntwo & three\n\nhttps://qr.example.test/x?a=1&b="2"\n\n<small>\n'


def test_invitation_email_headers_cannot_be_bent_by_the_card(mail_client, mail_settings, smtp):
    user = register(mail_client)
    card = create_card(mail_client, user["headers"], fullName='Doe, "Jane" <boss@evil.example>', email="jane@example.com")
    response = mail_client.post(
        f"/v1/cards/{card['cardId']}/share", headers=user["headers"],
        json={"recipients": [{"channel": "email", "to": "friend@example.com"}], "message": "Bcc: everyone@example.com"},
    )
    assert response.status_code == 202
    message = smtp.wait_for(2)[1]
    assert smtp.received[1][2] == ["friend@example.com"]
    assert message["To"].addresses[0].addr_spec == "friend@example.com" and len(message["To"].addresses) == 1
    # Reply-To is the owner's account address; From is the service's address, under the card's name or none.
    assert [a.addr_spec for a in message["Reply-To"].addresses] == [user["user"]["email"]]
    assert [a.addr_spec for a in message["From"].addresses] == [mail.sender(mail_settings).addr_spec]
    assert message["Bcc"] is None and message["Cc"] is None
    assert message["Message-ID"] == query(mail_settings, "SELECT message_id FROM email_outbox WHERE kind = 'invitation'")[0][0]
    assert "Bcc: everyone@example.com" in text_part(message)


def test_a_failed_attempt_is_retried_within_a_minute_and_then_delivered(mail_client, mail_settings, smtp):
    user = register(mail_client)
    smtp.wait_for(1)
    smtp.stop()
    card = create_card(mail_client, user["headers"])
    mail_client.post(
        f"/v1/cards/{card['cardId']}/share", headers=user["headers"], json={"recipients": [{"channel": "email", "to": "later@example.com"}]}
    )
    row = wait_until(
        lambda: query(mail_settings, "SELECT attempts, status, next_attempt_at, last_error FROM email_outbox"
            " WHERE kind = 'invitation' AND last_error IS NOT NULL"),
        what="a failed attempt",
    )[0]
    attempts, status, next_attempt_at, last_error = row
    assert (attempts, status) == (1, "pending") and "Connection" in last_error
    assert datetime.fromisoformat(next_attempt_at) - datetime.now(UTC) <= timedelta(minutes=1)
    assert mail_client.get("/health").json()["checks"]["queue"] == "retrying: 1 waiting, 1 after a failed attempt"
    invitations = mail_client.get(f"/v1/cards/{card['cardId']}/invitations", headers=user["headers"]).json()["items"]
    assert invitations[0]["status"] == "queued" and invitations[0]["sentAt"] is None

    smtp.start()
    wake_outbox(mail_client)
    message = smtp.wait_for(2)[1]
    assert message["To"] == "later@example.com"
    wait_until(lambda: query(mail_settings, "SELECT 1 FROM invitations WHERE status = 'sent'"), what="the invitation marked sent")
    assert query(mail_settings, "SELECT attempts, status FROM email_outbox WHERE kind = 'invitation'") == [(2, "sent")]
    assert mail_client.get("/health").json()["checks"]["queue"] == "ok"


def test_a_permanent_refusal_fails_at_once(mail_client, mail_settings, smtp):
    user = register(mail_client)
    smtp.wait_for(1)
    before = failed_total()
    smtp.rcpt_reply = "550 5.1.1 No such user"
    card = create_card(mail_client, user["headers"])
    recipients = {"recipients": [{"channel": "email", "to": "nobody@example.com"}]}
    mail_client.post(f"/v1/cards/{card['cardId']}/share", headers=user["headers"], json=recipients)
    row = wait_until(lambda: query(mail_settings, "SELECT status, attempts, last_error, message FROM email_outbox WHERE status = 'failed'"))
    assert row[0][:2] == ("failed", 1) and "550" in row[0][2] and row[0][3] is None
    assert query(mail_settings, "SELECT status FROM invitations") == [("failed",)]
    assert failed_total() == before + 1


def test_temporary_refusals_end_as_failed_after_the_last_attempt(mail_client, mail_settings, smtp):
    user = register(mail_client)
    smtp.wait_for(1)
    smtp.rcpt_reply = "451 4.3.0 Try again later"
    before = failed_total()
    card = create_card(mail_client, user["headers"])
    mail_client.post(
        f"/v1/cards/{card['cardId']}/share", headers=user["headers"], json={"recipients": [{"channel": "email", "to": "busy@example.com"}]}
    )
    attempts = lambda: query(mail_settings, "SELECT attempts, status FROM email_outbox WHERE kind = 'invitation'")[0]  # noqa: E731
    for n in range(1, mail.MAX_ATTEMPTS):
        # Each attempt fails and backs off; skip the wait instead of sleeping through it.
        wait_until(lambda: attempts()[0] >= n, what=f"attempt {n}")  # noqa: B023 (waited on at once)
        assert attempts()[1] == "pending"
        wake_outbox(mail_client)
    wait_until(lambda: attempts()[1] == "failed", what="the job to fail")
    assert attempts() == (mail.MAX_ATTEMPTS, "failed")
    assert failed_total() == before + 1
    assert len(smtp.received) == 1  # only the verification email got through


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_credentials_come_from_the_url(tmp_path, certificates, server_tls, trust):
    trust(certificates["ca"])
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        seen.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.login == b"mail@user" and auth_data.password == b"p:ss/word")

    sink = MailSink(tls_context=server_tls, authenticator=authenticator, auth_required=True).start()
    try:
        settings = make_settings(tmp_path, smtp_url=f"smtp://mail%40user:p%3Ass%2Fword@127.0.0.1:{sink.port}")
        with TestClient(create_app(settings)) as client:
            register(client)
            sink.wait_for(1)
        assert seen == [(b"mail@user", b"p:ss/word")]
    finally:
        sink.stop()


def test_a_restart_sends_waiting_mail_at_once(tmp_path):
    sink = MailSink()  # not started: the first run cannot deliver
    settings = make_settings(tmp_path, smtp_url=sink.url)
    with TestClient(create_app(settings)) as client:
        register(client, "restart@example.com")
        wait_until(lambda: query(settings, "SELECT 1 FROM email_outbox WHERE last_error IS NOT NULL"), what="a failed attempt")
    [(due,)] = query(settings, "SELECT next_attempt_at FROM email_outbox")
    assert datetime.fromisoformat(due) > datetime.now(UTC)  # backing off
    sink.start()
    try:
        with TestClient(create_app(settings)) as client:
            [message] = sink.wait_for(1)
            assert message["To"] == "restart@example.com"
            wait_until(lambda: query(settings, "SELECT 1 FROM email_outbox WHERE status = 'sent'"), what="the job marked sent")
            assert query(settings, "SELECT attempts, status FROM email_outbox") == [(2, "sent")]
    finally:
        sink.stop()


def test_deleting_the_account_drops_its_waiting_mail(tmp_path):
    sink = MailSink()
    settings = make_settings(tmp_path, smtp_url=sink.url)
    with TestClient(create_app(settings)) as client:
        admin = register(client)  # the first account, the admin, may not leave alone
        user = register(client)
        wait_until(lambda: query(settings, "SELECT 1 FROM email_outbox WHERE last_error IS NOT NULL"))
        card = create_card(client, user["headers"])
        recipients = {"recipients": [{"channel": "email", "to": unique_email()}]}
        client.post(f"/v1/cards/{card['cardId']}/share", headers=user["headers"], json=recipients)
        assert client.delete("/v1/me", headers=user["headers"]).status_code == 204
        assert query(settings, "SELECT recipient FROM email_outbox") == [(admin["user"]["email"],)]
        assert query(settings, "SELECT count(*) FROM invitations") == [(0,)]


def test_login_still_works_for_an_unverified_account(mail_client, smtp):
    register(mail_client, "unverified@example.com")
    assert mail_client.post("/v1/auth/login", json={"email": "unverified@example.com", "password": PASSWORD}).status_code == 200


# --- TLS: STARTTLS and smtps against a server with a certificate from a test CA ----------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict:
    """PEM files: a test CA, a key and certificate it signed for 127.0.0.1, and an unrelated CA."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC)

    def certificate(subject: str, key, issuer: str, issuer_key, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
            builder = builder.add_extension(x509.SubjectAlternativeName([loopback]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(name: str, data: bytes) -> str:
        path = folder / name
        path.write_bytes(data)
        return str(path)

    pem = serialization.Encoding.PEM
    ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    return {
        "ca": write("ca.pem", certificate("QR Contact test CA", ca_key, "QR Contact test CA", ca_key, True).public_bytes(pem)),
        "other_ca": write("other.pem", certificate("Someone else", other_key, "Someone else", other_key, True).public_bytes(pem)),
        "cert": write("server.pem", certificate("127.0.0.1", server_key, "QR Contact test CA", ca_key, False).public_bytes(pem)),
        "key": write("server.key", server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
    }


@pytest.fixture
def server_tls(certificates) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates["cert"], certificates["key"])
    return context


@pytest.fixture
def trust(monkeypatch):
    """Make a CA file the app's system trust store (OpenSSL reads SSL_CERT_FILE) for this test."""

    def trust_file(path: str) -> None:
        monkeypatch.setenv("SSL_CERT_FILE", path)
        mail.tls_context.cache_clear()

    yield trust_file
    mail.tls_context.cache_clear()


def verification_email(tmp_path, sink: MailSink, smtp_url: str):
    """Register tls@example.com with the app sending to `smtp_url`; the one message `sink` gets."""
    with TestClient(create_app(make_settings(tmp_path, smtp_url=smtp_url))) as client:
        register(client, email="tls@example.com")
        (message,) = sink.wait_for(1)
    return message


def test_starttls_protects_the_login_and_the_message(tmp_path, certificates, server_tls, trust):
    trust(certificates["ca"])
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        seen.append((session.ssl is not None, auth_data.login))
        return AuthResult(success=auth_data.password == b"secret")

    # The server refuses MAIL (and AUTH) before STARTTLS: a delivery shows the client upgraded.
    sink = MailSink(
        tls_context=server_tls, require_starttls=True, authenticator=authenticator, auth_required=True,
        auth_require_tls=True,
    ).start()
    try:
        message = verification_email(tmp_path, sink, f"smtp://mailer:secret@127.0.0.1:{sink.port}")
        assert message["To"] == "tls@example.com"
        assert seen == [(True, b"mailer")]
    finally:
        sink.stop()


def test_smtps_is_tls_from_the_first_byte(tmp_path, certificates, server_tls, trust):
    trust(certificates["ca"])
    sink = MailSink(ssl_context=server_tls).start()
    try:
        message = verification_email(tmp_path, sink, f"smtps://127.0.0.1:{sink.port}")
        assert message["To"] == "tls@example.com"
    finally:
        sink.stop()


def first_failed_attempt(tmp_path, smtp_url: str) -> tuple[int, str, str]:
    """Register with the app sending to `smtp_url`; the verification email's (attempts,
    status, last error) once its first attempt has failed."""
    settings = make_settings(tmp_path, smtp_url=smtp_url)
    with TestClient(create_app(settings)) as client:
        register(client)
        return wait_until(
            lambda: query(settings, "SELECT attempts, status, last_error FROM email_outbox WHERE last_error IS NOT NULL"),
            what="a failed attempt",
        )[0]


@pytest.mark.parametrize("scheme", ["smtp", "smtps"])
def test_an_untrusted_certificate_stops_the_delivery_without_a_plain_text_fallback(tmp_path, certificates, server_tls, trust, scheme):
    trust(certificates["other_ca"])
    # STARTTLS offered but not required: a client that gave up on TLS could still send in the clear.
    sink = MailSink(**({"tls_context": server_tls} if scheme == "smtp" else {"ssl_context": server_tls})).start()
    try:
        attempts, status, last_error = first_failed_attempt(tmp_path, f"{scheme}://127.0.0.1:{sink.port}")
        assert (attempts, status) == (1, "pending") and "CERTIFICATE_VERIFY_FAILED" in last_error
        assert sink.received == []
    finally:
        sink.stop()


def test_a_password_is_not_sent_to_a_server_without_starttls(tmp_path):
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        seen.append(auth_data.login)
        return AuthResult(success=True)

    # A server (or a stripping middleman) offering no STARTTLS but taking AUTH in the clear.
    sink = MailSink(authenticator=authenticator, auth_require_tls=False).start()
    try:
        attempts, status, last_error = first_failed_attempt(tmp_path, f"smtp://mailer:secret@127.0.0.1:{sink.port}")
        assert (attempts, status) == (1, "pending") and "STARTTLS" in last_error
        assert seen == [] and sink.received == []
    finally:
        sink.stop()
