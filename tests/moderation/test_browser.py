"""A moderator at work in a real headless Chromium, against a real daphne process.

Chromium is Debian's (`apt-get install -y chromium chromium-driver`, done by .ci/run), driven by
Playwright from PyPI; Playwright never downloads a browser of its own.
"""

from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import Group as AuthGroup
from django.core.management import call_command
from playwright.sync_api import sync_playwright
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import PASSWORD
from tests.servers import Server, register

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium chromium-driver)",
    ),
]


@pytest.fixture
def moderators_group(transactional_db):
    """On PostgreSQL the server shares the test database, which earlier transactional tests have
    emptied of what migrations created: re-run the migration that creates the Moderators group."""
    if not AuthGroup.objects.filter(name="Moderators").exists():
        call_command("migrate", "moderation", "0001", verbosity=0)
        call_command("migrate", "moderation", verbosity=0)


@pytest.fixture
def server(tmp_path, moderators_group):
    server = Server(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def page(tmp_path):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(15_000)
        yield page
        page.screenshot(path=tmp_path / "last-page.png")  # for a failed run: where it stopped
        browser.close()


def auth(account):
    return {"Authorization": f"Bearer {account['token']}"}


def run_action(page, row_id, action, reason):
    """Ticks a row of the list shown, runs the action, gives the reason and confirms."""
    page.check(f"input[name=_selected_action][value='{row_id}']")
    page.select_option("select[name=action]", action)
    with page.expect_navigation():
        page.click("button[name=index]")  # "Go"
    page.fill("textarea[name=reason]", reason)
    with page.expect_navigation():
        page.click("input[name=confirm]")


def wait_close_code(socket, timeout=10):
    try:
        while True:
            socket.recv(timeout=timeout)  # events before the close (presence, ...) are skipped
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


def test_moderator_bans_a_user_and_removes_a_message(server, page):
    alice, bob, _ = (register(server.base, name) for name in ("alice", "bob", "moderator"))
    made = server.manage("make_moderator", "moderator")
    assert made.returncode == 0, made.stderr
    api = httpx.Client(base_url=server.base, timeout=10)
    chat = api.post("/v1/conversations", json={"type": "private", "target_id": bob["user_id"]}, headers=auth(alice))
    chat_id = chat.json()["conversation_id"]
    spam = api.post(
        f"/v1/conversations/{chat_id}/messages", json={"content": "cheap pills, click here"}, headers=auth(alice)
    ).json()

    with connect(f"{server.ws}?token={alice['token']}") as alice_socket:
        # Log in as the moderator: staff, not a superuser (no "Authentication and Authorization").
        page.goto(f"{server.base}/admin/")
        page.fill("#id_username", "moderator")
        page.fill("#id_password", PASSWORD)
        with page.expect_navigation():
            page.click("input[type=submit]")
        assert page.locator("#at-a-glance").is_visible()
        assert page.locator("text=Authentication and Authorization").count() == 0

        # Find alice and ban her with a reason.
        page.click("#content-main a[href='/admin/accounts/user/']")
        page.fill("#searchbar", "alice")
        with page.expect_navigation():
            page.press("#searchbar", "Enter")
        run_action(page, alice["user_id"], "ban_users", "selling pills")
        assert "Ban users: done for 1." in page.locator("ul.messagelist").inner_text()

        # Her REST token is dead at once and her open WebSocket is closed with 4403.
        assert api.get("/v1/user/me", headers=auth(alice)).status_code == 401
        assert wait_close_code(alice_socket) == 4403

    # Remove her message: it stays in bob's history, as removed.
    page.goto(f"{server.base}/admin/chat/message/?q=cheap+pills")
    run_action(page, spam["message_id"].removeprefix("m"), "remove_messages", "spam")
    assert "Remove messages: done for 1." in page.locator("ul.messagelist").inner_text()

    history = api.get(f"/v1/conversations/{chat_id}/messages", headers=auth(bob)).json()["messages"]
    removed = next(m for m in history if m["message_id"] == spam["message_id"])
    assert (removed["status"], removed["content"]) == ("removed", "")
    assert removed["updated_at"]

    # Both actions are in the audit log, by the moderator.
    page.goto(f"{server.base}/admin/moderation/auditentry/")
    log = page.locator("#result_list").inner_text()
    assert "ban user" in log and "remove message" in log and "selling pills" in log
