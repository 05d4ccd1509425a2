"""Microsoft's Omnichannel chat SDK for the browser, bundled from node_modules on first use.

The npm package ships CommonJS only (``lib/``), so the demo's SDK page gets it through
esbuild (pinned in package.json), in memory, once per host process: no CDN, no network,
nothing written to the repository. Dev only.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO_ROOT / "node_modules"
PACKAGE = "@microsoft/omnichannel-chat-sdk"
GLOBAL_NAME = "OmnichannelChatSDKBundle"
BUILD_TIMEOUT = 120.0
# What the page imports: the SDK's class, as window.OmnichannelChatSDKBundle.OmnichannelChatSDK.
ENTRY = f'export {{ OmnichannelChatSDK }} from "{PACKAGE}";\n'
ESBUILD_ARGS = (
    "--bundle",
    "--format=iife",
    f"--global-name={GLOBAL_NAME}",
    "--platform=browser",
    "--minify",
    "--log-level=error",
    "--define:global=globalThis",
    '--define:process.env.NODE_ENV="production"',
    # Named explicitly, esbuild takes each package's browser/ESM build for require() too;
    # by default it takes `main` there, and @azure/communication-common's Node build needs
    # Node's crypto at load time.
    "--main-fields=browser,module,main",
)


class SdkBundleError(RuntimeError):
    """The SDK cannot be bundled; the message says what to install."""


class SdkBundle:
    """The SDK's browser bundle, built once with esbuild and kept in memory."""

    def __init__(self, node_modules: Path = NODE_MODULES) -> None:
        self.node_modules = node_modules
        self._script: bytes | None = None
        self._lock = asyncio.Lock()

    def version(self) -> str | None:
        """The installed SDK's version, or None when it is not installed."""
        manifest = self.node_modules / PACKAGE / "package.json"
        try:
            version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        except (OSError, ValueError):
            return None
        return version if isinstance(version, str) else None

    async def script(self) -> bytes:
        """The bundle (built on the first call, off the event loop)."""
        async with self._lock:
            if self._script is None:
                self._script = await asyncio.to_thread(self._build)
            return self._script

    def _build(self) -> bytes:
        esbuild = self.node_modules / ".bin" / "esbuild"
        if self.version() is None or not esbuild.exists():
            raise SdkBundleError(f"{PACKAGE} and esbuild are not installed: run `npm ci`")
        try:
            done = subprocess.run(
                [str(esbuild), *ESBUILD_ARGS],
                input=ENTRY.encode("utf-8"),
                cwd=self.node_modules.parent,
                capture_output=True,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SdkBundleError(f"esbuild could not bundle {PACKAGE}: {error}") from None
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace")[-500:]
            raise SdkBundleError(f"esbuild could not bundle {PACKAGE}: {detail}")
        return done.stdout
