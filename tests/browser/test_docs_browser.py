"""The API docs (/schema) in real Chromium against a live `qrcontact serve`: Swagger UI
renders and runs a request under the docs' CSP with no violation and no request leaving
the origin, and no other page can frame it."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.support.browser import new_page, screenshots

# Set before the page's own scripts run: every CSP violation the page meets, as the page sees it.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.effectiveDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`);
});
"""


def test_swagger_ui_renders_and_runs_a_request_under_its_csp(browser, console_server):
    page = new_page(browser, console_server)
    page.add_init_script(RECORD_VIOLATIONS)
    messages, elsewhere = [], []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
    page.on("request", lambda request: None if request.url.startswith(console_server.url) else elsewhere.append(request.url))
    response = page.goto("/schema")
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "unsafe" not in csp
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("QR Contact")
    # The document's operations are listed; /health is tried out and answers.
    health = page.locator(".opblock", has=page.locator(".opblock-summary-path[data-path='/health']"))
    health.locator(".opblock-summary").click()
    health.get_by_role("button", name="Try it out").click()
    health.get_by_role("button", name="Execute").click()
    expect(health.locator(".live-responses-table .response-col_status:not(.col_header)")).to_have_text("200")
    # The Authorize dialog's form works too (form-action 'none': it never submits).
    page.locator(".auth-wrapper .authorize").click()
    api_key = page.locator(".dialog-ux .auth-container", has_text="ApiKey")
    api_key.locator("#api_key_value").fill("not-a-real-key")
    api_key.get_by_role("button", name="Apply credentials").click()
    expect(api_key.get_by_role("heading", name="Authorized")).to_be_visible()
    page.locator(".dialog-ux .close-modal").click()
    screenshots(page, "docs")
    assert page.evaluate("window.cspViolations") == []
    assert not [m for m in messages if "Content Security Policy" in m or m.startswith(("error", "pageerror"))], messages
    assert elsewhere == []
    page.context.close()


def test_no_other_page_can_frame_the_docs(browser, console_server):
    page = new_page(browser, console_server)
    messages = []
    page.on("console", lambda message: messages.append(message.text))
    page.set_content(f"<iframe src='{console_server.url}/schema'></iframe>")
    frame = page.frames[1]
    frame.wait_for_load_state()
    assert frame.locator(".swagger-ui").count() == 0
    assert any("frame-ancestors 'none'" in m for m in messages), messages
    page.context.close()
