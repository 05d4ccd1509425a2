"""Chat Reconnect: the application package deployed to Azure Functions."""
