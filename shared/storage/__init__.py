"""Table storage adapters: the only code that speaks to Azure Table storage."""
