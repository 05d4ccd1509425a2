"""Checks of infra/: every Bicep file parses, checkov passes, and the Bicep matches the code.

pycep-parser and checkov live in their own virtualenv, .venv-checkov (`make test` builds it),
because checkov's pins do not resolve together with the app's; they run here as subprocesses.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
CHECKOV_VENV = REPO / ".venv-checkov"
CHECKOV_PYTHON = CHECKOV_VENV / "bin" / "python"
CHECKOV = CHECKOV_VENV / "bin" / "checkov"
CHECKOV_CONFIG = INFRA / ".checkov.yaml"
MAIN_BICEP = INFRA / "main.bicep"
MAIN_PARAMETERS = INFRA / "main.parameters.json"
API_BICEP = INFRA / "app" / "api.bicep"

# Settings the code reads (shared/config.py APP_SETTINGS) that are deliberately NOT set in Azure.
NOT_SET_IN_AZURE = {
    # Azure reaches Table storage with the managed identity (TABLES_ENDPOINT + AZURE_CLIENT_ID);
    # a connection string would need account keys, and the storage account disables them.
    "TABLES_CONNECTION_STRING",
    # Likewise the queues: QUEUES_ENDPOINT + AZURE_CLIENT_ID, never a connection string.
    "QUEUES_CONNECTION_STRING",
    # App Service sets it while its built-in authentication is on; a deployment must not.
    "WEBSITE_AUTH_ENABLED",
}

# App settings read by the Functions host and the platform rather than by our code.
HOST_SETTING_PREFIXES = (
    "AzureWebJobs",
    "APPLICATIONINSIGHTS_",
    "FUNCTIONS_",
    "WEBSITE_",
    "SCM_",
    "PYTHON_",
)

PARSE_BICEP = """
import json
import sys
from pathlib import Path

from pycep import BicepParser

parser = BicepParser()
errors = {}
for name in sys.argv[1:]:
    try:
        parser.parse(file_path=Path(name))
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(errors))
"""


@pytest.fixture(scope="module")
def checkov_venv() -> Path:
    """The checkov virtualenv; its absence is a failure, so the checks can't silently vanish."""
    if not (CHECKOV_PYTHON.exists() and CHECKOV.exists()):
        pytest.fail(
            f"{CHECKOV_VENV} is missing: run `make test`, which installs checkov==3.3.30 "
            "(and with it pycep-parser) into it",
            pytrace=False,
        )
    return CHECKOV_VENV


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def run_checkov(directory: Path, home: Path, *extra_args: str) -> dict[str, Any]:
    """Run checkov over `directory` and return its JSON report for the bicep framework.

    checkov also reads `.checkov.yaml` from the scanned directory, the working directory and
    the home directory; `home` stands in for the user's home so a personal config can't leak in.
    """
    command = [
        str(CHECKOV),
        "--directory",
        str(directory),
        "--framework",
        "bicep",
        "--skip-download",
        "--output",
        "json",
        *extra_args,
    ]
    result = subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    # checkov exits 1 when a check fails; anything else non-zero, or no JSON, is a crash.
    assert result.returncode in (0, 1), f"checkov crashed:\n{result.stderr[-3000:]}"
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"checkov printed no JSON report:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    if isinstance(report, list):  # one report per framework when several ran
        report = next(r for r in report if r.get("check_type") == "bicep")
    assert isinstance(report, dict)
    return report


def failed_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    return list(report.get("results", {}).get("failed_checks", []))


def describe(checks: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  {c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}" for c in checks
    )


def configured_skips() -> dict[str, str]:
    """The `skip-check` entries of the checkov config, each mapped to its reason comment."""
    skips: dict[str, str] = {}
    in_skip_list = False
    for line in CHECKOV_CONFIG.read_text().splitlines():
        if re.match(r"^skip-check\s*:", line):
            in_skip_list = True
            continue
        if in_skip_list and re.match(r"^\S", line):  # the next top-level key
            in_skip_list = False
        if not in_skip_list or not line.strip() or line.strip().startswith("#"):
            continue
        entry = re.match(r"^\s+-\s+([A-Z0-9_]+)\s*(?:#\s*(.*))?$", line)
        assert entry, f"unexpected line in the skip-check list of {CHECKOV_CONFIG.name}: {line!r}"
        check_id, reason = entry.group(1), (entry.group(2) or "").strip()
        assert check_id not in skips, f"{check_id} is skipped twice"
        skips[check_id] = reason
    return skips


def python_constant(path: Path, name: str) -> Any:
    """The literal value assigned to a module-level name, read without importing the module."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        else:
            continue
        if name in targets and node.value is not None:
            return ast.literal_eval(node.value)
    raise LookupError(f"{name} is not assigned in {path}")


def bicep_block(path: Path, opening: str) -> list[str]:
    """The lines between `opening` (a line ending in `{` or `[`) and its closing line."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == opening)
    indent = len(lines[start]) - len(lines[start].lstrip())
    closing = "}" if opening.endswith("{") else "]"
    end = next(
        i
        for i in range(start + 1, len(lines))
        if lines[i].strip() == closing and len(lines[i]) - len(lines[i].lstrip()) == indent
    )
    return [line.strip() for line in lines[start + 1 : end]]


def bicep_app_settings() -> dict[str, str]:
    """Name -> value expression of every app setting in api.bicep's `appSettings` object."""
    settings: dict[str, str] = {}
    for line in bicep_block(API_BICEP, "var appSettings = {"):
        if not line or line.startswith("//"):
            continue
        entry = re.match(r"^'?([A-Za-z_][A-Za-z0-9_]*)'?\s*:\s*(.+)$", line)
        assert entry, f"app settings must be one `NAME: value` per line, got {line!r}"
        settings[entry.group(1)] = entry.group(2)
    return settings


def test_every_bicep_file_parses(checkov_venv: Path) -> None:
    files = [str(path.relative_to(REPO)) for path in bicep_files()]
    assert "infra/main.bicep" in files
    result = subprocess.run(
        [str(CHECKOV_PYTHON), "-c", PARSE_BICEP, *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"pycep could not run:\n{result.stderr[-3000:]}"
    errors = json.loads(result.stdout)
    assert not errors, "Bicep files that do not parse:\n" + "\n".join(
        f"  {name}: {error}" for name, error in errors.items()
    )


def test_checkov_reports_no_failed_checks(checkov_venv: Path, tmp_path: Path) -> None:
    # The command `make test` documents: .venv-checkov/bin/checkov -d infra --framework bicep
    # --skip-download --config-file infra/.checkov.yaml -o json
    report = run_checkov(Path("infra"), tmp_path, "--config-file", "infra/.checkov.yaml")
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, f"checkov could not parse some files: {summary}"
    assert summary["passed"] > 0, f"checkov ran no check at all: {summary}"
    failed = failed_checks(report)
    assert not failed, f"checkov failed checks ({summary}):\n{describe(failed)}"


def test_every_checkov_skip_has_a_reason() -> None:
    skips = configured_skips()
    assert skips, f"no skip-check list found in {CHECKOV_CONFIG}"
    unexplained = [check_id for check_id, reason in skips.items() if len(reason.split()) < 5]
    assert not unexplained, (
        f"skips without a reason comment in {CHECKOV_CONFIG.name}: {unexplained}; "
        "write `- CKV_... # why it does not apply`"
    )
    # One place for skips: inline suppressions in the Bicep would escape this review.
    inline = [str(p.relative_to(REPO)) for p in bicep_files() if "checkov:skip" in p.read_text()]
    assert not inline, f"skip checks in {CHECKOV_CONFIG.name}, not inline: {inline}"


def test_every_checkov_skip_is_still_needed(checkov_venv: Path, tmp_path: Path) -> None:
    # A copy of infra/ without the config, so that checkov runs every check.
    unskipped = tmp_path / "infra"
    shutil.copytree(INFRA, unskipped, ignore=shutil.ignore_patterns(CHECKOV_CONFIG.name))
    failing = {check["check_id"] for check in failed_checks(run_checkov(unskipped, tmp_path))}
    skips = set(configured_skips())
    assert (
        not skips - failing
    ), f"these skipped checks pass now; remove them from the config: {sorted(skips - failing)}"
    assert not failing - skips, f"these checks fail and are not skipped: {sorted(failing - skips)}"


def test_bicep_sets_every_app_setting_the_code_reads() -> None:
    code_settings = set(python_constant(REPO / "shared" / "config.py", "APP_SETTINGS"))
    bicep_settings = set(bicep_app_settings())
    assert code_settings >= NOT_SET_IN_AZURE, (
        f"the not-set-in-Azure list names settings the code no longer reads: "
        f"{sorted(NOT_SET_IN_AZURE - code_settings)}"
    )
    missing = code_settings - bicep_settings - NOT_SET_IN_AZURE
    assert (
        not missing
    ), f"settings the code reads but {API_BICEP.name} does not set: {sorted(missing)}"
    wrongly_set = NOT_SET_IN_AZURE & bicep_settings
    assert not wrongly_set, f"settings meant to stay unset in Azure: {sorted(wrongly_set)}"


def test_bicep_sets_no_setting_nobody_reads() -> None:
    code_settings = set(python_constant(REPO / "shared" / "config.py", "APP_SETTINGS"))
    unknown = {
        name
        for name in bicep_app_settings()
        if name not in code_settings and not name.startswith(HOST_SETTING_PREFIXES)
    }
    assert not unknown, (
        f"{API_BICEP.name} sets settings that neither the code (shared/config.py APP_SETTINGS) "
        f"nor the Functions host reads: {sorted(unknown)}"
    )


def test_the_app_settings_object_is_what_gets_deployed() -> None:
    text = API_BICEP.read_text()
    assert re.search(
        r"name: 'appsettings'\s+properties: appSettings\s", text
    ), "the appsettings config resource must deploy the `appSettings` object as it is"


def test_signing_keys_come_from_key_vault_through_the_app_identity() -> None:
    settings = bicep_app_settings()
    text = API_BICEP.read_text()
    assert settings["RECONNECT_SIGNING_KEY"].startswith("'@Microsoft.KeyVault(SecretUri=")
    # The previous key is empty outside a rotation, else a reference to a pinned secret version.
    assert settings["RECONNECT_PREVIOUS_SIGNING_KEY"] == "previousSigningKey"
    assert re.search(
        r"var previousSigningKey = empty\(previousSigningKeyVersion\) \? '' : "
        r"'@Microsoft\.KeyVault\(SecretUri=\$\{signingKeySecretUri\}/\$\{previousSigningKeyVersion\}\)'",
        text,
    )
    assert "keyVaultReferenceIdentity: identityId" in text
    assert settings["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"


def test_signing_key_is_a_secure_parameter_supplied_by_the_environment() -> None:
    text = MAIN_BICEP.read_text()
    declaration = re.search(r"@secure\(\)\n(?:@.*\n)*param signingKey string(.*)\n", text)
    assert declaration, "signingKey must be a @secure() string parameter of main.bicep"
    assert "=" not in declaration.group(1), "signingKey must have no default value"
    parameters = json.loads(MAIN_PARAMETERS.read_text())["parameters"]
    assert parameters["signingKey"] == {"value": "${RECONNECT_SIGNING_KEY}"}


def test_parameters_file_matches_main_bicep() -> None:
    declared = dict(
        re.findall(r"^param (\w+) \w+(.*)$", MAIN_BICEP.read_text(), flags=re.MULTILINE)
    )
    mapped = set(json.loads(MAIN_PARAMETERS.read_text())["parameters"])
    assert not mapped - set(declared), f"unknown parameters: {sorted(mapped - set(declared))}"
    required = {name for name, rest in declared.items() if "=" not in rest}
    assert required <= mapped, f"required parameters without a value: {sorted(required - mapped)}"


def test_bicep_creates_the_tables_the_store_uses() -> None:
    store = REPO / "shared" / "storage" / "tables.py"
    try:
        store_tables = python_constant(store, "TABLE_NAMES")
    except (FileNotFoundError, LookupError):
        pytest.skip("shared/storage/tables.py does not define TABLE_NAMES")
    bicep_tables = [
        line.strip("'") for line in bicep_block(MAIN_BICEP, "var tableNames = [") if line
    ]
    assert sorted(bicep_tables) == sorted(store_tables)


def funcignore_excludes(name: str) -> bool:
    """Whether a top-level file or folder name matches a pattern of .funcignore."""
    patterns = [
        line.strip()
        for line in (REPO / ".funcignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(fnmatch.fnmatch(name, pattern.rstrip("/")) for pattern in patterns)


@pytest.mark.parametrize("name", ["function_app.py", "host.json", "requirements.txt", "shared"])
def test_funcignore_keeps_what_the_app_needs(name: str) -> None:
    assert not funcignore_excludes(name)


@pytest.mark.parametrize(
    "name",
    [
        *(".venv", ".venv-checkov", "node_modules", ".git", ".gitignore", "local.settings.json"),
        *("local.settings.json.example", ".azure"),
        *("tests", "local", "benchmarks", "widget", "docs", "infra", "examples"),
        *("README.md", "requirements-dev.txt", "Makefile", "azure.yaml"),
    ],
)
def test_funcignore_leaves_out_what_the_app_does_not(name: str) -> None:
    assert funcignore_excludes(name)


@pytest.mark.parametrize(
    "name",
    ["venv", "env", ".venv311", "my_env", ".env", "build", "dist", "chat_reconnect.egg-info"],
)
def test_funcignore_leaves_out_other_virtualenvs_and_build_output(name: str) -> None:
    # With a .funcignore present azd stops leaving out virtual environments itself, and
    # `pip install .` (azd's restore) leaves build/ and *.egg-info/ in the project.
    assert funcignore_excludes(name)


# --- the deployment as azd runs it (issue 12, item 9) -------------------------------------

PARSE_ONE_BICEP = """
import json
import sys
from pathlib import Path

from pycep import BicepParser

print(json.dumps(BicepParser().parse(file_path=Path(sys.argv[1])), default=str))
"""


def parsed_bicep(path: Path) -> dict[str, Any]:
    """The pycep parse tree of one Bicep file (pycep runs in the checkov virtualenv)."""
    result = subprocess.run(
        [str(CHECKOV_PYTHON), "-c", PARSE_ONE_BICEP, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"pycep could not parse {path}:\n{result.stderr[-3000:]}"
    tree = json.loads(result.stdout)
    assert isinstance(tree, dict)
    return tree


def azure_yaml() -> dict[str, Any]:
    import yaml

    document = yaml.safe_load((REPO / "azure.yaml").read_text())
    assert isinstance(document, dict)
    return document


def test_azure_yaml_requires_an_azd_that_passes_cors_origins_correctly() -> None:
    constraint = azure_yaml()["requiredVersions"]["azd"]
    found = re.fullmatch(r">=\s*(\d+)\.(\d+)\.(\d+)", constraint.strip())
    assert found, f"requiredVersions.azd should be a lower bound, got {constraint!r}"
    assert tuple(int(part) for part in found.groups()) >= (1, 23, 4)


def test_provisioning_restarts_the_app_so_key_vault_references_are_read_again() -> None:
    hooks = azure_yaml()["hooks"]["postprovision"]
    outputs = set(re.findall(r"^output (\w+) ", MAIN_BICEP.read_text(), flags=re.MULTILINE))
    for platform, variable in (("posix", r"\$(\w+)"), ("windows", r"\$env:(\w+)")):
        command = hooks[platform]["run"]
        assert command.startswith("az functionapp restart ")
        used = set(re.findall(variable, command))
        assert used == {"AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME"}
        assert used <= outputs, f"the {platform} hook uses values main.bicep does not output"


def test_pip_install_of_the_repository_names_its_packages() -> None:
    # `azd restore` runs `pip install .`; setuptools refuses to guess a flat layout with
    # several top-level folders, so the deployed packages are listed, and must stay complete.
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["build-system"]["build-backend"] == "setuptools.build_meta"
    setuptools = pyproject["tool"]["setuptools"]
    packages_on_disk = sorted(
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "shared").rglob("__init__.py")
        if "__pycache__" not in init.parts
    )
    assert sorted(setuptools["packages"]) == packages_on_disk
    assert setuptools["py-modules"] == ["function_app"]
    assert pyproject["project"]["dynamic"] == ["dependencies"]
    assert setuptools["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    # setuptools reads that file as plain requirement lines: no pip options in it.
    lines = (REPO / "requirements.txt").read_text().splitlines()
    assert not [line for line in lines if line.strip().startswith("-")]


def test_ftps_state_is_not_configured_on_flex_consumption() -> None:
    # Flex Consumption has no FTP(S) endpoint; the publishing-credential policies refuse it.
    assert "ftpsState" not in API_BICEP.read_text()
    assert re.search(
        r"name: 'ftp'\s+properties: \{\s+allow: false", API_BICEP.read_text()
    ), "FTP publishing must stay refused"


# --- the event queues and the identity's roles on them (issue 14) --------------------------

RBAC_BICEP = INFRA / "app" / "rbac.bicep"
STORAGE_BICEP = INFRA / "core" / "storage" / "storage.bicep"

# Built-in role definition ids, the same in every tenant (Azure built-in roles reference).
BUILT_IN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
    "19e7f393-937e-4f77-808e-94535e297925": "Storage Queue Data Reader",
    "8a0f0c08-91a1-4084-bc3d-661d67233fed": "Storage Queue Data Message Processor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
}


def accessor(expression: Any) -> tuple[str, str] | None:
    """`a.b` as ("a", "b") from a pycep expression; None for anything else."""
    if isinstance(expression, dict) and expression.get("operator", {}).get("type") == (
        "property_accessor"
    ):
        operands = expression["operator"]["operands"]
        if isinstance(operands["operand_2"], str):
            return operands["operand_1"], operands["operand_2"]
    return None


def granted_roles() -> set[tuple[str, str]]:
    """(scope resource in rbac.bicep, built-in role name) for every role assignment there."""
    tree = parsed_bicep(RBAC_BICEP)
    variables = {name: v["value"] for name, v in tree["variables"].items()}

    def role_name(expression: Any) -> str:
        found = accessor(expression)
        assert found is not None, f"a role id that is not roles.<name>: {expression}"
        assert found[0] == "roles", f"a role id that is not roles.<name>: {expression}"
        return BUILT_IN_ROLES[variables["roles"][found[1]]]

    granted: set[tuple[str, str]] = set()
    for name, resource in tree["resources"].items():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        config = resource["config"]
        if "loop_type" in config:
            loop = config["loop_type"]["detail"]
            body = config["config"]
            assert (
                body["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
                == loop["item_name"]
            ), name
            roles = [role_name(item) for item in variables[loop["array_name"]]]
        else:
            body = config
            function = body["properties"]["roleDefinitionId"]["function"]
            roles = [role_name(function["parameters"]["resource_name_1"])]
        scope = body["scope"]
        assert isinstance(scope, str), f"{name}: scope must name a resource, got {scope}"
        # The assignment's name derives from the same scope, so a redeployment finds it again.
        assert accessor(body["name"]["function"]["parameters"]["base_string"]) == (scope, "id")
        granted |= {(scope, role) for role in roles}
    return granted


def queue_resources() -> dict[str, str]:
    """Resource symbol in rbac.bicep -> the parameter naming that (existing) queue."""
    tree = parsed_bicep(RBAC_BICEP)
    queues = {
        name: resource["config"]["name"]
        for name, resource in tree["resources"].items()
        if resource["type"] == "Microsoft.Storage/storageAccounts/queueServices/queues"
    }
    assert all(tree["resources"][name]["existing"] for name in queues)
    return queues


def test_the_storage_module_creates_the_event_queues(checkov_venv: Path) -> None:
    main = parsed_bicep(MAIN_BICEP)
    parameter = main["parameters"]["eventsQueueName"]
    assert parameter["default"] == "conversation-events"
    limits = {d["type"]: d["argument"] for d in parameter["decorators"]}
    assert (limits["min_length"], limits["max_length"]) == (3, 63)  # Azure's queue name limits
    assert main["variables"]["eventsOutboxQueueName"]["value"] == "conversation-events-outbox"
    # The Functions host's name for the poison queue of a queue trigger: <queue>-poison.
    assert main["variables"]["eventsPoisonQueueName"]["value"] == "${eventsOutboxQueueName}-poison"
    assert main["modules"]["storage"]["config"]["params"]["queueNames"] == [
        "eventsQueueName",
        "eventsOutboxQueueName",
        "eventsPoisonQueueName",
    ]
    storage = parsed_bicep(STORAGE_BICEP)["resources"]
    queues = storage["queues"]
    assert queues["type"] == "Microsoft.Storage/storageAccounts/queueServices/queues"
    assert queues["existing"] is False
    assert queues["config"]["loop_type"]["detail"]["array_name"] == "queueNames"
    assert queues["config"]["config"] == {"parent": "queueService", "name": "queueName"}
    assert storage["queueService"]["config"] == {"parent": "storage", "name": "default"}
    rbac = main["modules"]["rbac"]["config"]["params"]
    assert {name: rbac[name] for name in rbac if name.startswith("events")} == {
        "eventsQueueName": "eventsQueueName",
        "eventsOutboxQueueName": "eventsOutboxQueueName",
        "eventsPoisonQueueName": "eventsPoisonQueueName",
    }


def test_the_identity_holds_exactly_these_roles_on_these_scopes(checkov_venv: Path) -> None:
    # Functions' documented roles for the Queue Storage extension: a trigger needs Storage
    # Queue Data Reader and Storage Queue Data Message Processor; sending needs Storage Queue
    # Data Message Sender. Queue roles are scoped to single queues, never to the account.
    assert queue_resources() == {
        "eventsQueue": "eventsQueueName",
        "outboxQueue": "eventsOutboxQueueName",
        "poisonQueue": "eventsPoisonQueueName",
    }
    assert granted_roles() == {
        ("storage", "Storage Blob Data Owner"),
        ("storage", "Storage Table Data Contributor"),
        # The public queue: the relay sends; reading it is the consumers' business.
        ("eventsQueue", "Storage Queue Data Message Sender"),
        # The outbox: requests stage (send) and the relay is triggered by it (read, receive,
        # delete) and stages again what must wait (send).
        ("outboxQueue", "Storage Queue Data Reader"),
        ("outboxQueue", "Storage Queue Data Message Processor"),
        ("outboxQueue", "Storage Queue Data Message Sender"),
        # The host moves a message that failed five times there: it sends, and creates the
        # queue only when it is missing (it exists).
        ("poisonQueue", "Storage Queue Data Message Sender"),
        ("applicationInsights", "Monitoring Metrics Publisher"),
        ("vault", "Key Vault Secrets User"),
    }


def test_no_role_lets_the_app_create_delete_or_read_the_public_queue(checkov_venv: Path) -> None:
    granted = granted_roles()
    assert ("eventsQueue", "Storage Queue Data Reader") not in granted
    assert ("eventsQueue", "Storage Queue Data Message Processor") not in granted
    assert "Storage Queue Data Contributor" not in {role for _, role in granted}
    assert not {role for scope, role in granted if scope == "storage" and "Queue" in role}


def test_the_app_reaches_the_queues_with_its_identity_and_no_keys(checkov_venv: Path) -> None:
    api = parsed_bicep(API_BICEP)
    settings = api["variables"]["appSettings"]["value"]
    assert settings["EVENTS_QUEUE"] == "eventsQueueName"
    assert settings["EVENTS_OUTBOX_QUEUE"] == "eventsOutboxQueueName"
    assert settings["EVENTS_SOURCE"] == "eventsSource"
    assert settings["QUEUES_ENDPOINT"] == "queuesEndpoint"
    assert api["variables"]["queuesEndpoint"]["value"] == (
        "https://${storageAccountName}.queue.${environment().suffixes.storage}"
    )
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert "QUEUES_CONNECTION_STRING" not in settings
    # The relay's queue trigger uses the connection AzureWebJobsStorage: the host builds the
    # queue endpoint from the account name and signs in with the user-assigned identity.
    assert settings["AzureWebJobsStorage__accountName"] == "storageAccountName"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert "AzureWebJobsStorage" not in settings  # a connection string would need a key
    main = parsed_bicep(MAIN_BICEP)
    assert main["parameters"]["eventsSource"]["default"] == "/chat-reconnect"
    params = main["modules"]["api"]["config"]["params"]
    assert params["eventsQueueName"] == "eventsQueueName"
    assert params["eventsOutboxQueueName"] == "eventsOutboxQueueName"
    assert params["eventsSource"] == "eventsSource"
    mapped = json.loads(MAIN_PARAMETERS.read_text())["parameters"]
    assert mapped["eventsQueueName"] == {"value": "${EVENTS_QUEUE}"}
    assert mapped["eventsSource"] == {"value": "${EVENTS_SOURCE}"}


def test_no_account_key_is_read_or_allowed_anywhere() -> None:
    storage = STORAGE_BICEP.read_text()
    assert re.search(r"^\s+allowSharedKeyAccess: false$", storage, flags=re.MULTILINE)
    for path in bicep_files():
        text = path.read_text()
        assert "listKeys" not in text, path
        assert "AccountKey" not in text, path
        assert "listAccountSas" not in text, path
        assert "listServiceSas" not in text, path


def test_a_soft_deleted_vault_can_be_recovered_by_a_parameter(checkov_venv: Path) -> None:
    main = parsed_bicep(MAIN_BICEP)
    mode = main["parameters"]["keyVaultCreateMode"]
    assert mode["default"] == "default"
    allowed = next(d for d in mode["decorators"] if d["type"] == "allowed")
    assert sorted(allowed["argument"]) == ["default", "recover"]
    assert main["modules"]["keyVault"]["config"]["params"]["createMode"] == "keyVaultCreateMode"
    vault = parsed_bicep(INFRA / "core" / "security" / "keyvault.bicep")
    assert vault["resources"]["vault"]["config"]["properties"]["createMode"] == "createMode"
    parameters = json.loads(MAIN_PARAMETERS.read_text())["parameters"]
    assert parameters["keyVaultCreateMode"] == {"value": "${KEY_VAULT_CREATE_MODE}"}


# --- Entra ID in front of the admin routes (issue 12, item 2) -----------------------------


def test_admin_sign_in_is_deployed_only_with_an_admin_app_registration(
    checkov_venv: Path,
) -> None:
    main = parsed_bicep(MAIN_BICEP)
    assert main["parameters"]["adminClientId"]["default"] == ""
    api = parsed_bicep(API_BICEP)
    assert api["variables"]["adminSignIn"]["value"] == {
        "operator": {
            "type": "not",
            "operands": {
                "bool_value": {
                    "function": {"type": "empty", "parameters": {"item_to_test": "adminClientId"}}
                }
            },
        }
    }
    module = api["modules"]["adminAuthentication"]
    assert module["detail"]["path"] == "admin-auth.bicep"
    assert module["config"]["condition"] == "adminSignIn"
    assert module["config"]["config"]["params"]["clientId"] == "adminClientId"
    assert module["config"]["config"]["params"]["tenantId"] == "adminTenantId"
    # The app's half of the check is switched on by the same condition, never on its own.
    role = api["variables"]["appSettings"]["value"]["ADMIN_REQUIRED_ROLE"]
    assert role == {
        "operator": {
            "type": "conditional",
            "operands": {
                "condition": "adminSignIn",
                "true_value": "adminAppRole",
                "false_value": "",
            },
        }
    }


def test_admin_sign_in_validates_entra_tokens_and_lets_other_callers_through(
    checkov_venv: Path,
) -> None:
    tree = parsed_bicep(INFRA / "app" / "admin-auth.bicep")
    config = next(
        r for r in tree["resources"].values() if r["type"] == "Microsoft.Web/sites/config"
    )
    assert config["config"]["name"] == "authsettingsV2"
    settings = config["config"]["properties"]
    assert settings["platform"] == {"enabled": True}
    validation = settings["globalValidation"]
    # No include list exists: requests without a token pass, and the app requires the
    # forwarded principal on /api/manage/* (shared/api/admin_auth.py).
    assert validation["requireAuthentication"] is False
    assert validation["unauthenticatedClientAction"] == "AllowAnonymous"
    assert all(path.startswith("/api/widgets/") for path in validation["excludedPaths"])
    entra = settings["identityProviders"]["azureActiveDirectory"]
    assert entra["enabled"] is True
    assert entra["registration"]["clientId"] == "clientId"
    assert entra["registration"]["openIdIssuer"] == (
        "${environment().authentication.loginEndpoint}${tenantId}/v2.0"
    )
    assert sorted(entra["validation"]["allowedAudiences"]) == ["api://${clientId}", "clientId"]
    assert settings["httpSettings"]["requireHttps"] is True
    assert settings["login"]["tokenStore"]["enabled"] is False
