"""Email invitations delivered to a real SMTP server (aiosmtpd): the tracked link, the open
pixel and the funnel with real and bot user agents.
"""

from __future__ import annotations

import io

from PIL import Image

from tests.support.app import (
    BOT_AGENTS,
    PHONE_UA,
    create_card,
    register,
)
from tests.support.db import query
from tests.support.mail import html_part, text_part
from tests.support.sharing import invitations, share, token_of, viral
from tests.support.waiting import wait_until

MAIL_SCANNERS = [
    "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))",
    "Mimecast URL Protect",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) ms-office; MSOffice 16 Microsoft Office",
    "Proofpoint URL Defense",
]


def test_email_invitations_arrive_with_a_tracked_link_and_an_open_pixel(mail_client, smtp):
    user = register(mail_client)
    card = create_card(mail_client, user["headers"], fullName="Jane Doe", title="CTO", organization="Acme")
    share(mail_client, user, card, {"channel": "email", "to": "friend@example.com"}, message="Hello <there>")
    message = smtp.wait_for(2)[1]
    assert message["Subject"] == "Jane Doe shared their contact card with you"
    text, html = text_part(message), html_part(message)
    assert "Jane Doe (CTO, Acme) shared their contact card with you." in text and "Hello <there>" in text
    assert "Hello &lt;there&gt;" in html and "<there>" not in html
    token = token_of(text)
    assert f'href="https://qr.example.test/i/{token}"' in html
    assert f'<img src="https://qr.example.test/i/{token}/open.gif" width="1" height="1" alt="">' in html


def test_the_funnel_counts_people_and_not_bots(mail_client, mail_settings, smtp):
    user = register(mail_client)
    card = create_card(mail_client, user["headers"], slug="funnel-card")
    before = {e: viral(e, "email") for e in ("sent", "opened", "clicked", "converted")}
    share(mail_client, user, card, {"channel": "email", "to": "friend@example.com"})
    message = smtp.wait_for(2)[1]
    token = token_of(text_part(message))
    wait_until(lambda: invitations(mail_client, user, card)[0]["status"] == "sent", what="the invitation marked sent")
    assert viral("sent", "email") == before["sent"] + 1
    pixel, link = f"/i/{token}/open.gif", f"/i/{token}"

    # Bots, previews, scanners and HEAD requests get their answers but move nothing.
    for agent in BOT_AGENTS + MAIL_SCANNERS:
        image = mail_client.get(pixel, headers={"User-Agent": agent})
        assert image.status_code == 200 and image.headers["content-type"] == "image/gif"
        followed = mail_client.get(link, headers={"User-Agent": agent}, follow_redirects=False)
        assert followed.status_code == 302 and followed.headers["location"] == "/p/funnel-card?src=share"
    assert mail_client.head(pixel, headers={"User-Agent": PHONE_UA}).status_code == 200
    assert mail_client.head(link, headers={"User-Agent": PHONE_UA}, follow_redirects=False).status_code == 302
    [state] = invitations(mail_client, user, card)
    assert (state["status"], state["openedAt"], state["clickedAt"]) == ("sent", None, None)

    # A person opens the email (twice) and clicks (twice): each stage counts once.
    image = mail_client.get(pixel, headers={"User-Agent": PHONE_UA})
    assert Image.open(io.BytesIO(image.content)).size == (1, 1)
    assert image.headers["cache-control"] == "no-store, private"
    mail_client.get(pixel, headers={"User-Agent": PHONE_UA})
    opened = invitations(mail_client, user, card)[0]
    assert opened["status"] == "opened" and opened["openedAt"]
    for _ in range(2):
        followed = mail_client.get(link, headers={"User-Agent": PHONE_UA}, follow_redirects=False)
        assert followed.status_code == 302 and followed.headers["location"] == "/p/funnel-card?src=share"
    clicked = invitations(mail_client, user, card)[0]
    assert clicked["status"] == "clicked" and clicked["openedAt"] == opened["openedAt"] and clicked["clickedAt"]
    mail_client.get(pixel, headers={"User-Agent": PHONE_UA})
    assert invitations(mail_client, user, card)[0]["status"] == "clicked"  # never backwards

    # The recipient registers with the token.
    newcomer = register(mail_client, "friend@example.com", inviteToken=token)
    converted = invitations(mail_client, user, card)[0]
    assert converted["status"] == "converted" and converted["convertedAt"]
    assert converted["sentAt"] <= converted["openedAt"] <= converted["clickedAt"] <= converted["convertedAt"]
    assert query(mail_settings, "SELECT converted_user_id FROM invitations") == [(newcomer["user"]["userId"],)]
    assert [viral(e, "email") - before[e] for e in ("sent", "opened", "clicked", "converted")] == [1, 1, 1, 1]
    # A token converts once.
    register(mail_client, inviteToken=token)
    assert viral("converted", "email") == before["converted"] + 1


