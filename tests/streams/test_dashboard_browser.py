"""The operations page in headless Chromium: the last hour's charts draw from the running
stack, and a source that goes down (PostgreSQL unreachable, then the dashboard itself) shows on
the page. Screenshots: dashboard.png, dashboard-charts.png, dashboard-source-down.png and
dashboard-stale.png under .data/screenshots/."""

from __future__ import annotations

import dataclasses

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from support.browser import Browser, browser_fixture, screenshot, serve  # noqa: F401 (fixture)

from ledger.settings import Settings
from streams.dashboard import server

pytestmark = pytest.mark.services

UNREACHABLE_DATABASE = "postgresql://ledger@127.0.0.1:9/ledger"
"""Port 9 (discard): nothing listens there, so every connection is refused at once."""

CHARTS = ("chart-throughput", "chart-latency", "chart-lag", "chart-rejections")


def chart_points(driver: WebDriver, chart_id: str) -> int:
    return int(driver.find_element(By.ID, chart_id).get_attribute("data-points") or 0)


def test_charts_draw_the_last_hour_from_the_stack(settings: Settings, browser: Browser) -> None:
    """Within two history samples every chart has points and a drawn line, with time labels."""
    with serve(lambda: server.create_app(settings)) as url:
        browser.driver.get(url + "/")
        browser.wait_for(
            lambda driver: chart_points(driver, "chart-throughput") >= 2,
            "two throughput samples on the chart",
        )
        screenshot(browser.driver, "dashboard")
        for chart_id in CHARTS:
            chart = browser.driver.find_element(By.ID, chart_id)
            drawn = [
                path.get_attribute("d")
                for path in chart.find_elements(By.CSS_SELECTOR, "path.series")
            ]
            assert any(drawn), f"{chart_id} drew no line"
            ticks = [text.text for text in chart.find_elements(By.CSS_SELECTOR, "text.tick")]
            assert "now" in ticks and "-60 min" in ticks, ticks
        # Lag and latency come from Kafka and PostgreSQL, both up: they have points too.
        assert chart_points(browser.driver, "chart-lag") >= 2
        caption = browser.driver.find_element(By.ID, "history-caption").text
        assert "a sample every 5" in caption, caption
        history = browser.driver.find_element(By.ID, "history")
        browser.driver.execute_script("arguments[0].scrollIntoView()", history)
        screenshot(browser.driver, "dashboard-charts")
        assert browser.console_errors() == []


def test_a_source_going_down_shows_on_the_page(settings: Settings, browser: Browser) -> None:
    """PostgreSQL unreachable: its pill turns red and the Sources table says why; then the
    dashboard itself stops: a banner says the figures on screen are stale."""
    unreachable = dataclasses.replace(settings, database_url=UNREACHABLE_DATABASE)
    with serve(lambda: server.create_app(unreachable)) as url:
        browser.driver.get(url + "/")
        pill = browser.wait_for(
            lambda driver: driver.find_element(By.CSS_SELECTOR, "#source-postgres.down"),
            "the PostgreSQL pill marked down",
        )
        assert "unavailable" in (pill.get_attribute("title") or "")
        kafka = browser.driver.find_element(By.ID, "source-kafka")
        assert "up" in (kafka.get_attribute("class") or "").split()
        rows = browser.driver.find_elements(By.CSS_SELECTOR, "#sources tr")
        postgres_row = next(row.text for row in rows if row.text.startswith("PostgreSQL"))
        assert "down" in postgres_row, postgres_row
        screenshot(browser.driver, "dashboard-source-down")
    banner = browser.wait_for(
        lambda driver: (
            driver.find_element(By.ID, "banner").is_displayed()
            and driver.find_element(By.ID, "banner")
        ),
        "the stale-figures banner",
    )
    assert "does not answer" in banner.text
    screenshot(browser.driver, "dashboard-stale")
