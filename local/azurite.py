"""Start and stop Azurite's table and queue services as child processes, stopped by PID."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from types import TracebackType

from local.processes import free_port, stop_process_group, wait_for_port

REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE_TABLE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite-table"
AZURITE_QUEUE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite-queue"

# Azurite's well-known development account (public, documented by Microsoft).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# Azurite's default queue port, where "UseDevelopmentStorage=true" points.
DEFAULT_QUEUE_PORT = 10001


def connection_string(port: int) -> str:
    """The connection string of an Azurite table service on 127.0.0.1:port."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )


def queue_connection_string(port: int) -> str:
    """The connection string of an Azurite queue service on 127.0.0.1:port."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"QueueEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )


def storage_connection_string(table_port: int, queue_port: int) -> str:
    """One connection string for Azurite's table and queue services (AzureWebJobsStorage)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"TableEndpoint=http://127.0.0.1:{table_port}/{DEV_ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{queue_port}/{DEV_ACCOUNT};"
    )


class Azurite:
    """An Azurite table service on 127.0.0.1; in memory unless a data folder is given."""

    # The npm binary and its host/port flags: AzuriteQueue changes only these.
    binary = AZURITE_TABLE_BIN
    service = "table"

    def __init__(self, port: int | None = None, location: Path | None = None) -> None:
        self.port = port or free_port()
        self.location = location
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 30.0) -> Azurite:
        """Start the server and wait until it accepts connections."""
        if not self.binary.exists():
            raise FileNotFoundError(f"{self.binary} is missing: run `npm ci` first")
        args = [
            str(self.binary),
            f"--{self.service}Host",
            "127.0.0.1",
            f"--{self.service}Port",
            str(self.port),
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--silent",
        ]
        if self.location is None:
            args.append("--inMemoryPersistence")
        else:
            self.location.mkdir(parents=True, exist_ok=True)
            args += ["--location", str(self.location)]
        # A session of its own, so that stopping it stops node and nothing else.
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(self.port, timeout)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server by its PID (its process group), waiting until it is gone."""
        if self.process is None:
            return
        # Azurite saves a data folder only on SIGINT; SIGTERM would lose recent writes.
        first_signal = signal.SIGINT if self.location is not None else signal.SIGTERM
        stop_process_group(self.process, timeout, first_signal)

    def restart(self, timeout: float = 30.0) -> Azurite:
        """Stop and start again on the same port (in-memory data is lost)."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class AzuriteQueue(Azurite):
    """An Azurite queue service on 127.0.0.1 (integration events); same life cycle."""

    binary = AZURITE_QUEUE_BIN
    service = "queue"

    @property
    def connection_string(self) -> str:
        return queue_connection_string(self.port)
