"""Development-only tools: the local Functions host, the Azurite launcher, the dev runner."""
