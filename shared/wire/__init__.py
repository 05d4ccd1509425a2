"""Wire shapes the services and the HTTP layer share: the conversation as the contract shows
it, and the integration event built from it."""
