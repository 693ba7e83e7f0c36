"""The web console under /app (SPEC §6): server-rendered pages over the same domain
operations the API calls.

Adding a page: write its handlers in a module of this package (see cards.py), render with
`web.page(request, "console/<name>.html", section=..., **plain_data)`, answer a good POST
with `web.see_other(url, flash=key)`, list the handlers in the module's `handlers`, and add
the module's `handlers` to `router` below. Handlers get `request.user`; a page for people
who are not signed in says `opt={"public": True}`. Every POST is CSRF-checked (the form
needs `{{ csrf_input | safe }}`) and refused from another origin, and counts against the
per-client rate limit the API has (one bucket per client for both doors), as does a GET
page marked `opt={"rate_limited": True}`; past it, the 429 page with Retry-After.
"""

from __future__ import annotations

from litestar import Router, get
from litestar.response import Redirect

from app.api import limits
from app.console import (
    account,
    activity,
    auth,
    brand,
    card_stats,
    cards,
    carried,
    invitations,
    keys,
    leads,
    share,
    team,
    team_import,
    web,
    webhooks,
)


@get("/", opt={"public": True}, include_in_schema=False, sync_to_thread=False)
def console_home() -> Redirect:
    return Redirect(web.HOME, status_code=302)


@get("/", include_in_schema=False, sync_to_thread=False)
def site_root() -> Redirect:
    """`/` sends a visitor to the console (SPEC §6)."""
    return Redirect("/app", status_code=302)


def router() -> Router:
    return Router(
        "/app",
        route_handlers=[
            console_home, web.static_file, *auth.handlers, *cards.handlers, *carried.handlers, *share.handlers, *invitations.handlers,
            *card_stats.handlers, *leads.handlers, *activity.handlers, *keys.handlers, *webhooks.handlers, *account.handlers,
            *team.handlers, *brand.handlers, *team_import.handlers, web.not_found,
        ],
        before_request=web.session_hook,
        # The rate limit first: a request past it costs no CSRF check, session lookup or form parsing.
        middleware=[
            web.one_page_at_a_time,
            limits.rate_limit(web.counts_against_the_rate_limit).middleware, web.CsrfCheck,
        ],
        exception_handlers=web.EXCEPTION_HANDLERS,
        include_in_schema=False,
    )


template_config = web.template_config
csrf_config = web.csrf_config
