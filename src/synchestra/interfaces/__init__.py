"""What people and programs use: the HTTP API, the dashboard, the CLI, metrics."""
