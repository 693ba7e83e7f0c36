"""Email without an SMTP server: verification tokens, the Reply-To address, the retry
backoff and the .eml files of the outbox folder (delivery over SMTP is
tests/live/test_mail.py).
"""

from __future__ import annotations

import email
import email.policy
import itertools

import pytest

from app import mail
from tests.support.app import assert_problem, create_card, register
from tests.support.db import query
from tests.support.waiting import wait_until

REPLY_NAMES = [
    "Jane Doe", "Doe, Jane", "Dõe, Jane", 'Doe, "Jane" <boss@evil.example>',
    "Jane Doe, Chief Executive Officer of Ünïcorn Widgets International, boss@evil.example",
    "a" * 40 + ", " + "b" * 40, "x" * 70 + ",boss@evil.example", "Ü, " + "x" * 80, "Ä" * 30 + ", Jane Doe Something",
    "Jane Q. Public, Ph.D., Ünïcorn Widgets International Holdings", "a, " * 66 + "ü", "Ü" * 200, 'a"b,c\\d;e:' * 18,
]


@pytest.mark.parametrize("token", ["", "made-up-token", "x" * 64])
def test_unknown_verification_tokens_are_refused(client, token):
    assert_problem(client.post("/v1/auth/verify-email", json={"token": token}), 422)


@pytest.mark.parametrize("to", ["friend@example.com", "josé@example.com"], ids=["ascii", "utf8"])
@pytest.mark.parametrize("name", REPLY_NAMES)
def test_reply_to_is_one_address_whatever_the_card_name(settings, to, name):
    """CPython's folding drops the quotes of a long display name it splits, so "Doe, Jane"
    could become two Reply-To addresses; the message as stored and sent has exactly one."""
    message = mail.compose(settings, to=to, subject="s", text="t", html="<p>t</p>", reply_to=(name, "jane@example.com"))
    sent = message.as_bytes()  # as the outbox stores it and SMTP sends it
    parsed = email.message_from_string(sent.decode(), policy=email.policy.default)
    [reply_to] = parsed["Reply-To"].addresses
    assert reply_to.addr_spec == "jane@example.com"
    assert reply_to.display_name in (name, "")
    if len(name) < 20:
        assert reply_to.display_name == name  # short names are kept
    assert [a.addr_spec for a in parsed["To"].addresses] == [to]


@pytest.mark.parametrize("to", ["friend@example.com", "josé@example.com"], ids=["ascii", "utf8"])
def test_an_invitation_has_one_reply_to_address(client, settings, to):
    user = register(client)
    name = "Jane Doe, Chief Executive Officer of Ünïcorn Widgets International, boss@evil.example"
    card = create_card(client, user["headers"], fullName=name, email="jane@example.com")
    body = {"recipients": [{"channel": "email", "to": to}]}
    assert client.post(f"/v1/cards/{card['cardId']}/share", headers=user["headers"], json=body).status_code == 202
    files = wait_until(lambda: len(found := sorted(settings.outbox_dir.glob("*.eml"))) == 2 and found, what="two .eml files")
    messages = [email.message_from_string(file.read_text(), policy=email.policy.default) for file in files]
    [invitation] = [m for m in messages if m["Reply-To"] is not None]
    # Reply-To is the owner's account address (SPEC §8); From stays the service's one address under any name.
    assert [a.addr_spec for a in invitation["Reply-To"].addresses] == [user["user"]["email"]]
    assert [a.addr_spec for a in invitation["From"].addresses] == [mail.sender(settings).addr_spec]


def test_the_backoff_grows_and_is_bounded():
    assert mail.RETRY_DELAYS[0] <= 60
    assert all(later > earlier for earlier, later in itertools.pairwise(mail.RETRY_DELAYS))
    assert mail.MAX_ATTEMPTS == len(mail.RETRY_DELAYS) + 1


def test_without_smtp_mail_is_written_to_the_outbox_folder(client, settings):
    register(client, "eml@example.com")
    files = wait_until(lambda: sorted(settings.outbox_dir.glob("*.eml")), what="an .eml file")
    assert len(files) == 1 and not list(settings.outbox_dir.glob("*.part"))
    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert message["To"] == "eml@example.com" and message["Subject"] == "Confirm your email address"
    wait_until(lambda: query(settings, "SELECT 1 FROM email_outbox WHERE status = 'sent'"), what="the job marked sent")
    assert query(settings, "SELECT message_id, status FROM email_outbox") == [(message["Message-ID"], "sent")]
    assert files[0].name == mail.eml_name(
        mail.Job(0, message["Message-ID"], "", "", b"", 1, query(settings, "SELECT created_at FROM email_outbox")[0][0], None)
    )


@pytest.mark.parametrize(
    "address, header",
    [
        ("a..b@example.com", "a..b@example.com"),
        (".dot@example.com", ".dot@example.com"),
        ("a!#$%&*+=?^_`|~@example.com", "a!#$%&*+=?^_`|~@example.com"),
        ("jane@exämple.com", "jane@xn--exmple-cua.com"),
        ("josé@example.com", "josé@example.com"),
    ],
)
def test_odd_but_accepted_addresses_get_their_mail(client, settings, address, header):
    user = register(client, address)
    card = create_card(client, user["headers"], email=address)
    response = client.post(
        f"/v1/cards/{card['cardId']}/share", headers=user["headers"], json={"recipients": [{"channel": "email", "to": address}]}
    )
    assert response.status_code == 202
    files = wait_until(lambda: len(found := sorted(settings.outbox_dir.glob("*.eml"))) == 2 and found, what="two .eml files")
    # Read as UTF-8 text: a non-ASCII local part goes out in raw UTF-8 headers (SMTPUTF8).
    messages = [email.message_from_string(file.read_text(), policy=email.policy.default) for file in files]
    for message in messages:
        assert [a.addr_spec for a in message["To"].addresses] == [header]
    [invitation] = [m for m in messages if m["Reply-To"] is not None]
    assert [a.addr_spec for a in invitation["Reply-To"].addresses] == [header]
    assert query(settings, "SELECT DISTINCT recipient FROM email_outbox") == [(header,)]




def test_a_kind_of_mail_not_named_in_the_code_is_refused_and_nothing_queued(client, settings):
    message = mail.EmailMessage()
    message["To"] = "someone@example.com"
    message["Message-ID"] = "<x@example.test>"
    db = client.app.state.db

    async def queue() -> None:
        async with db.write() as tx:
            await mail.enqueue(tx, client.app.state.outbox, message, kind="newsletter")

    with pytest.raises(ValueError, match="newsletter"):
        client.blocking_portal.call(queue)
    assert query(settings, "SELECT count(*) FROM email_outbox") == [(0,)]
    assert mail.MAIL_KINDS >= {"verification", "team_invitation", "webhook_disabled"}
