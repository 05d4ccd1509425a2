"""The rules of reconnection: pure values and functions, no I/O, no Azure imports."""
