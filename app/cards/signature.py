"""A card as an email signature (SPEC §10): an HTML block and its plain-text twin, pure
functions, no I/O.

What survives Gmail, Outlook (Word's renderer) and Apple Mail is old HTML: nested tables,
attributes for sizes, styles inline on every element (no <style>, no classes, no flex or
grid, no CSS shorthand Outlook drops), images by absolute URL with width and height set.
Links to the card go through the scan redirect with `src=signature`, so visits from
signatures count as their own source (counters.Source); tel: and mailto: links cannot
be counted and are left plain. The small QR is the card's public code (/q/{slug}.png):
the same code as the printed one, so a scan of it from a screen counts as `qr`, while a
click on it follows the tracked link around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from app.cards.types import Card
from app.public.looks import DEFAULT_ACCENT

SOURCE = "signature"
PHOTO_SIDE = 72  # CSS pixels; the 96 px thumbnail, so sharp on 1.33x screens
QR_SIDE = 80
INK = "#111827"
MUTED = "#4b5563"
FONT = "Arial, Helvetica, sans-serif"  # what every mail client has


@dataclass(frozen=True, slots=True)
class Signature:
    html: str
    text: str


def card_link(base_url: str, slug: str) -> str:
    """The tracked link to the card that every part of the signature leads to."""
    return f"{base_url}/c/{slug}?src={SOURCE}"


def build(card: Card, base_url: str, *, photo_path: str | None, accent: str | None = None) -> Signature:
    """The signature of `card`: `photo_path` is its photo's thumbnail path under base_url
    (None without a photo); `accent` the link colour (the card's, or the team's)."""
    link = card_link(base_url, card.slug)
    colour = accent or card.accent_color or DEFAULT_ACCENT
    role = ", ".join(part for part in (card.title, card.department) if part)
    lines: list[str] = [_line(card.full_name, f"font-size:16px;font-weight:bold;color:{INK};")]
    if role:
        lines.append(_line(role, f"color:{MUTED};"))
    if card.organization:
        lines.append(_line(card.organization, f"color:{MUTED};"))
    contacts: list[tuple[str, str, str]] = []  # (label, href, shown)
    for phone in card.phones[:2]:
        contacts.append(("Phone" if phone.type != "mobile" else "Mobile", "tel:" + _dialable(phone.number), phone.number))
    contacts.append(("Email", "mailto:" + card.email, card.email))
    if card.website:
        contacts.append(("Web", card.website, _bare(card.website)))
    for label, href, shown in contacts:
        lines.append(
            f'<tr><td style="padding:0;font-family:{FONT};font-size:13px;line-height:20px;color:{MUTED};">'
            f"{escape(label)}: "
            f'<a href="{escape(href)}" style="color:{colour};text-decoration:none;white-space:nowrap;">{escape(shown)}</a></td></tr>'
        )
    lines.append(
        f'<tr><td style="padding:6px 0 0 0;font-family:{FONT};font-size:13px;line-height:20px;">'
        f'<a href="{escape(link)}" style="color:{colour};font-weight:bold;text-decoration:none;">'
        f"My contact card &#8250;</a></td></tr>"
    )
    cells: list[str] = []
    if photo_path:
        cells.append(
            f'<td width="{PHOTO_SIDE + 16}" valign="top" style="padding:0 16px 0 0;vertical-align:top;">'
            f'<a href="{escape(link)}" style="text-decoration:none;">'
            f'<img src="{escape(base_url + photo_path)}" width="{PHOTO_SIDE}" height="{PHOTO_SIDE}" '
            f'alt="{escape(card.full_name)}" style="display:block;width:{PHOTO_SIDE}px;height:{PHOTO_SIDE}px;'
            f'border:0;border-radius:{PHOTO_SIDE // 2}px;"></a></td>'
        )
    cells.append(
        f'<td valign="top" style="padding:0 16px 0 12px;vertical-align:top;border-left:3px solid {colour};">'
        f'<table cellpadding="0" cellspacing="0" border="0" role="presentation" style="border-collapse:collapse;">'
        + "".join(lines)
        + "</table></td>"
    )
    cells.append(
        f'<td width="{QR_SIDE}" valign="top" style="padding:0;vertical-align:top;">'
        f'<a href="{escape(link)}" style="text-decoration:none;">'
        f'<img src="{escape(base_url)}/q/{escape(card.slug)}.png" width="{QR_SIDE}" height="{QR_SIDE}" '
        f'alt="QR code of my contact card" style="display:block;width:{QR_SIDE}px;height:{QR_SIDE}px;border:0;"></a></td>'
    )
    html = (
        f'<table cellpadding="0" cellspacing="0" border="0" role="presentation" '
        f'style="border-collapse:collapse;font-family:{FONT};font-size:14px;line-height:20px;color:{INK};">'
        f"<tr>{''.join(cells)}</tr></table>"
    )
    text_lines = [card.full_name]
    if role:
        text_lines.append(role)
    if card.organization:
        text_lines.append(card.organization)
    text_lines += [f"{label}: {shown}" for label, _, shown in contacts]
    text_lines.append(f"My contact card: {link}")
    return Signature(html=html, text="\n".join(text_lines) + "\n")


def _line(text: str, style: str) -> str:
    return f'<tr><td style="padding:0;font-family:{FONT};line-height:20px;{style}">{escape(text)}</td></tr>'


def _dialable(number: str) -> str:
    """A number as a tel: URI holds it: digits and a leading +, nothing else."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return ("+" if number.strip().startswith("+") else "") + digits


def _bare(url: str) -> str:
    """A website as people read it: without the scheme or a trailing slash."""
    return url.removeprefix("https://").removeprefix("http://").rstrip("/")
