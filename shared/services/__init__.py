"""Use cases, one module per caller, over the storage adapters, a link signer and a clock."""
