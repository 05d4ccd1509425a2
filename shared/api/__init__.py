"""HTTP entry points: one azure.functions Blueprint per caller, plus shared request plumbing."""
