"""The block explorer in headless Chromium against the real stack: search a tx_id and land on its
page, download its proof and verify it, list matches, page a statement, open a block.

Each test saves a screenshot of the page it checks under .data/screenshots/ (explorer-*.png).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from support.browser import Browser, browser_fixture, screenshot, serve  # noqa: F401 (fixture)
from support.explorer_app import explorer_app, transfers_to_bob, wait_provable
from support.ledger_fixture import TestLedger

from ledger.client.publisher import Sealed
from ledger.proofs import verify_proof
from ledger.settings import Settings

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def explorer_url(settings: Settings) -> Iterator[str]:
    """The explorer with the code under test, served from a thread of its own."""
    with serve(lambda: explorer_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
async def traffic(
    settings: Settings, test_ledger: TestLedger, explorer_url: str
) -> tuple[str, list[Sealed]]:
    """Two transfers to bob sharing a fresh external reference, both provable."""
    reference = f"explorer-browser-{uuid.uuid4().hex[:12]}"
    sealed = await transfers_to_bob(settings, test_ledger, [21, 22], reference)
    for outcome in sealed:
        await wait_provable(explorer_url, test_ledger.ledger, outcome.tx_id)
    return reference, sealed


def wait_ready(browser: Browser, route_start: str) -> None:
    """Until the explorer rendered a page whose hash route starts with ``route_start``."""

    def rendered(driver: WebDriver) -> bool:
        view = driver.find_element(By.ID, "view")
        return bool(
            view.get_attribute("data-state") == "ready"
            and (view.get_attribute("data-route") or "").startswith(route_start)
        )

    browser.wait_for(rendered, f"the explorer page {route_start}")


def search(browser: Browser, query: str) -> None:
    box = browser.driver.find_element(By.ID, "search-input")
    box.clear()
    box.send_keys(query)
    browser.driver.find_element(By.ID, "search-button").click()


def column(browser: Browser, table_id: str, index: int) -> list[str]:
    rows = browser.driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
    return [row.find_elements(By.TAG_NAME, "td")[index].text for row in rows]


def test_searching_a_tx_id_opens_it_sealed_and_its_proof_verifies(
    browser: Browser,
    explorer_url: str,
    traffic: tuple[str, list[Sealed]],
    test_ledger: TestLedger,
) -> None:
    """Type the tx_id, land on its page sealed; the server's check holds and the downloaded
    proof verifies with ledger.proofs against the ledger's sealer key."""
    _, sealed = traffic
    tx_hex = sealed[0].tx_id.hex()
    browser.driver.get(f"{explorer_url}/explorer")
    wait_ready(browser, "#/")
    search(browser, tx_hex)
    wait_ready(browser, f"#/tx/{tx_hex}")
    assert browser.driver.find_element(By.ID, "tx-status").text in ("sealed", "final")
    assert f"block {sealed[0].height}" in browser.driver.find_element(By.ID, "tx-block-link").text
    browser.wait_for(
        lambda driver: (
            driver.find_element(By.ID, "proof-check").get_attribute("data-holds") == "true"
        ),
        "the server's proof check",
    )
    screenshot(browser.driver, "explorer-tx", full_page=True)
    browser.driver.find_element(By.ID, "proof-download").click()
    document = json.loads(browser.wait_for_download(f"proof-{tx_hex}.json").read_text())
    summary = verify_proof(document, test_ledger.sealer_public_key)
    assert (summary["tx_id"], summary["height"]) == (tx_hex, sealed[0].height)
    assert browser.console_errors() == []


def test_an_external_ref_shared_by_two_transactions_lists_both(
    browser: Browser, explorer_url: str, traffic: tuple[str, list[Sealed]]
) -> None:
    """An ambiguous search lists its matches; following one opens that transaction."""
    reference, sealed = traffic
    browser.driver.get(f"{explorer_url}/explorer")
    wait_ready(browser, "#/")
    search(browser, reference)
    wait_ready(browser, "#/search/")
    links = browser.driver.find_elements(By.CSS_SELECTOR, "#search-results li a")
    assert sorted(link.text.split()[-4] for link in links) == sorted(
        outcome.tx_id.hex() for outcome in sealed
    )
    screenshot(browser.driver, "explorer-search")
    links[0].click()
    wait_ready(browser, "#/tx/")
    assert browser.console_errors() == []


def test_statement_pages_older_then_newer(
    browser: Browser, explorer_url: str, traffic: tuple[str, list[Sealed]]
) -> None:
    """bob's statement, two rows a page: older shows other rows, newer brings the first back."""
    browser.driver.get(f"{explorer_url}/explorer#/account/main/bob?limit=2")
    wait_ready(browser, "#/account/main/bob")
    assert browser.driver.find_element(By.ID, "account-status").text == "active"
    first_page = column(browser, "statement", 0)
    assert len(first_page) == 2
    screenshot(browser.driver, "explorer-account")
    browser.driver.find_element(By.ID, "statement-older").click()
    wait_ready(browser, "#/account/main/bob?before=")
    older_page = column(browser, "statement", 0)
    assert len(older_page) == 2 and set(older_page).isdisjoint(first_page)
    browser.driver.find_element(By.ID, "statement-newer").click()
    wait_ready(browser, "#/account/main/bob?after=")
    assert column(browser, "statement", 0) == first_page
    assert browser.console_errors() == []


def test_a_block_opens_from_the_latest_blocks(browser: Browser, explorer_url: str) -> None:
    """The first block of the list opens its page, with its header and its transactions."""
    browser.driver.get(f"{explorer_url}/explorer")
    wait_ready(browser, "#/")
    first = browser.driver.find_element(By.CSS_SELECTOR, "#blocks-main tbody tr td a")
    height = first.text.replace(",", "")
    screenshot(browser.driver, "explorer-blocks")
    first.click()
    wait_ready(browser, f"#/block/main/{height}")
    header = browser.driver.find_element(By.ID, "block-header").text
    assert "tx_root" in header and "blocks_root" in header and "source position" in header
    assert browser.driver.find_elements(By.CSS_SELECTOR, "#block-transactions tbody tr")
    screenshot(browser.driver, "explorer-block", full_page=True)
    assert browser.console_errors() == []
