"""Who counts: people in any browser, in-app ones included; crawlers, link previews, mail
scanners and HTTP libraries never (app/public/bots.py, is_bot)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.public import bots
from tests.support.app import create_card, flush_counters
from tests.support.sharing import invitations, share, token_of

# Real user agents of people opening a link inside an app, and of ordinary browsers.
PEOPLE = {
    "LinkedIn iOS": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 [LinkedInApp]/9.29.8156",
    "LinkedIn Android": "Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.119 Mobile Safari/537.36 [LinkedInApp]/4.1.924",
    "Instagram": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 Instagram 320.0.2.30.97 (iPhone15,3; iOS 17_3_1; en_US; en; scale=3.00; 1290x2796; 566278512)",
    "X iOS": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 Twitter for iPhone/10.24",
    "X Android": "Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/UQ1A.240205.004; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/121.0.6167.178 Mobile Safari/537.36 TwitterAndroid",
    "Telegram iOS": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1 Telegram-iOS/10.9",
    "Telegram Android": "Mozilla/5.0 (Linux; Android 12; M2101K6G Build/SKQ1.210908.001; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.230 Mobile Safari/537.36 Telegram-Android/10.6.2 "
    "(Xiaomi M2101K6G; Android 12; SDK 31; AVERAGE)",
    "Pinterest iOS": "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 [Pinterest/iOS]",
    "Pinterest Android": "Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36 [Pinterest/Android]",
    "Facebook iOS": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 [FBAN/FBIOS;FBAV/442.0.0.43.114;FBBV/544104390;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;"
    "FBSV/17.1.2;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/546212178]",
    "Facebook Android": "Mozilla/5.0 (Linux; Android 13; SM-S908B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/442.0.0.32.113;]",
    "Snapchat": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 Snapchat/12.60.0.42 (like Safari/8617.1.17.10.9, panda)",
    "Google app": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "GSA/309.0.616685635 Mobile/15E148 Safari/604.1",
    "iOS camera": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Samsung Internet": "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "Firefox": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Edge": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Safari/537.36 Edg/124.0.0.0",
}

# Real user agents of fetchers: link previews, crawlers, mail scanners, HTTP libraries.
BOTS = {
    "Facebook preview": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "WhatsApp preview": "WhatsApp/2.23.20.0 A",
    "Slack preview": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Slack image proxy": "Slack-ImgProxy (+https://api.slack.com/robots)",
    "LinkedIn preview": "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "X preview": "Twitterbot/1.0",
    "Telegram preview": "TelegramBot (like TwitterBot)",
    "Pinterest crawler": "Mozilla/5.0 (compatible; Pinterestbot/1.0; +http://www.pinterest.com/bot.html)",
    "Discord preview": "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "iMessage preview": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) "
    "Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0",
    "Teams/Skype preview": "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/51.0.2704.103 Safari/537.36 SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
    "Googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Gmail image proxy": "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Bing preview": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/116.0.1938.76 Safari/537.36 BingPreview/1.0b",
    "Applebot": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
    "Mastodon": "Mastodon/4.2.1 (http.rb/5.1.1; +https://mastodon.social/)",
    "Office link check": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) ms-office; MSOffice 16 Microsoft Office",
    "Office existence discovery": "Microsoft Office Existence Discovery",
    "Barracuda": "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))",
    "Mimecast": "Mimecast URL Protect",
    "Proofpoint": "Proofpoint URL Defense",
    "Headless Chrome": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 "
    "Safari/537.36",
    "curl": "curl/8.4.0",
    "Wget": "Wget/1.21.4",
    "python-requests": "python-requests/2.31.0",
    "Go": "Go-http-client/1.1",
    "no user agent": "",
}


@pytest.mark.parametrize("agent", PEOPLE.values(), ids=PEOPLE.keys())
def test_people_in_any_app_are_people(agent):
    assert not bots.is_bot(agent)


@pytest.mark.parametrize("agent", BOTS.values(), ids=BOTS.keys())
def test_fetchers_are_bots(agent):
    assert bots.is_bot(agent)
    assert bots.is_bot(agent.upper()) and bots.is_bot(agent.lower())  # whatever the case


def test_in_app_scans_and_views_are_counted_and_previews_are_not(client, user):
    card = create_card(client, user["headers"], slug="in-app")
    for agent in [*PEOPLE.values(), *BOTS.values()]:
        assert client.get("/c/in-app", headers={"User-Agent": agent}, follow_redirects=False).status_code == 302
        assert client.get("/p/in-app", headers={"User-Agent": agent}).status_code == 200
    flush_counters(client)
    body = client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json()
    assert (body["scanCount"], body["viewCount"]) == (len(PEOPLE), len(PEOPLE))


def test_a_linkedin_share_clicked_in_the_linkedin_app_is_a_click(client, user):
    card = create_card(client, user["headers"], slug="linkedin-click")
    [sent] = share(client, user, card, {"channel": "linkedin"}).json()["invitations"]
    link = f"/i/{token_of(sent['shareUrl'])}"
    client.get(link, headers={"User-Agent": BOTS["LinkedIn preview"]}, follow_redirects=False)
    assert invitations(client, user, card)[0]["status"] == "sent"  # the preview is not a click
    client.get(link, headers={"User-Agent": PEOPLE["LinkedIn iOS"]}, follow_redirects=False)
    assert invitations(client, user, card)[0]["status"] == "clicked"


def test_webmail_image_proxies_open_the_email_but_never_click(client, user):
    """Gmail and Yahoo fetch a message's images through their proxies when the person opens
    it: the open pixel counts them; links and scans do not."""
    card = create_card(client, user["headers"], slug="proxied")
    [sent] = share(client, user, card, {"channel": "sms", "to": "+15550100109"}).json()["invitations"]
    token = token_of(sent["shareUrl"])
    client.get(f"/i/{token}/open.gif", headers={"User-Agent": BOTS["Googlebot"]})
    assert invitations(client, user, card)[0]["openedAt"] is None
    client.get(f"/i/{token}", headers={"User-Agent": BOTS["Gmail image proxy"]}, follow_redirects=False)
    assert invitations(client, user, card)[0]["clickedAt"] is None
    client.get(f"/i/{token}/open.gif", headers={"User-Agent": BOTS["Gmail image proxy"]})
    assert invitations(client, user, card)[0]["openedAt"] is not None


def test_the_cache_keeps_only_short_user_agents():
    """Whatever clients send, the cache holds at most 4,096 agents of at most
    MAX_USER_AGENT characters: a longer agent is a bot, answered without a search."""
    before = bots._known_bot.cache_info().currsize
    huge = PEOPLE["Firefox"] + " x" * bots.MAX_USER_AGENT
    assert bots.is_bot(huge)
    assert bots._known_bot.cache_info().currsize == before
    assert bots._known_bot.cache_info().maxsize == 4096


@pytest.mark.parametrize(
    "method, agent, counts",
    [
        ("GET", BOTS["Gmail image proxy"], True),
        ("GET", "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", True),
        ("GET", PEOPLE["iOS camera"], True),
        ("HEAD", PEOPLE["iOS camera"], False),
        ("GET", BOTS["Googlebot"], False),
        ("GET", "", False),
        ("GET", None, False),
        ("GET", "GoogleImageProxy " + "x" * bots.MAX_USER_AGENT, False),
    ],
)
def test_which_open_pixel_requests_count(method, agent, counts):
    request = SimpleNamespace(method=method, headers={} if agent is None else {"user-agent": agent})
    assert bots.countable_open(request) is counts
