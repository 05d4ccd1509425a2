"""docs/events.md stays true: its example event validates, its tables name the event types,
their `via` and the settings the code reads, and the example consumer it shows exists."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from shared.api.event_schema import EVENT_TYPE_PREFIX, EVENT_VIAS
from shared.config import APP_SETTINGS
from tests.events import validate_event

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "events.md"


def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def section(heading: str) -> str:
    return doc().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows[1:]]


def test_the_envelope_example_is_a_valid_event() -> None:
    (example,) = re.findall(r"```json\n(.*?)\n```", section("The envelope"), flags=re.DOTALL)
    event = json.loads(example)
    validate_event(event)
    assert event["type"] == EVENT_TYPE_PREFIX + "reconnect_timeout"
    assert event["data"]["capacityReleased"] == event["data"]["agentId"]


def test_the_event_table_lists_every_type_with_its_via() -> None:
    documented: dict[str, set[str]] = {}
    for cells in table_rows(section("The events")):
        what = cells[0].strip("`")
        documented[what] = set(re.findall(r"`(platform|widget|timer)`", cells[2]))
    assert documented == {what: set(vias) for what, vias in EVENT_VIAS.items()}


def test_the_settings_table_names_settings_the_code_reads() -> None:
    names = [cells[0].strip("`") for cells in table_rows(section("Settings"))]
    assert names == [
        "EVENTS_QUEUE",
        "EVENTS_SOURCE",
        "EVENTS_OUTBOX_QUEUE",
        "QUEUES_CONNECTION_STRING",
        "QUEUES_ENDPOINT",
    ]
    assert set(names) <= set(APP_SETTINGS)


def test_the_example_consumer_is_where_the_page_says() -> None:
    folder = ROOT / "examples" / "events_consumer"
    for name in ("function_app.py", "host.json", "requirements.txt", "local.settings.json.example"):
        assert (folder / name).is_file(), name
    assert "def on_conversation_event(" in (folder / "function_app.py").read_text()
    assert "examples/events_consumer/" in doc()
    assert (ROOT / "tests" / "integration" / "test_events_consumer.py").is_file()
    # The consumer reads the queue as the page says the app writes it: Base64.
    host = json.loads((folder / "host.json").read_text())
    assert host["extensions"]["queues"]["messageEncoding"] == "base64"


def test_the_readme_and_the_contract_point_here() -> None:
    assert "(docs/events.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "events.md" in (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")


def test_the_example_consumer_triggers_on_the_events_queue_with_its_settings() -> None:
    spec = importlib.util.spec_from_file_location(
        "events_consumer_metadata", ROOT / "examples" / "events_consumer" / "function_app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    functions = {f.get_function_name(): f for f in module.app.get_functions()}
    (trigger,) = json.loads(functions["on_conversation_event"].get_function_json())["bindings"]
    assert trigger["type"] == "queueTrigger"
    assert trigger["queueName"] == "%EVENTS_QUEUE%"
    assert trigger["connection"] == "EventsStorage"
    settings = json.loads(
        (ROOT / "examples" / "events_consumer" / "local.settings.json.example").read_text()
    )["Values"]
    assert settings["EVENTS_QUEUE"] == "conversation-events"
    assert settings["EventsStorage"] == "UseDevelopmentStorage=true"
    assert {"CONSUMER_TABLES_CONNECTION_STRING", "CONSUMER_TABLE"} <= set(settings)
