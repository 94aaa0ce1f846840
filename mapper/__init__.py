"""The compiler driver: frontends, pipelines, reports and the command-line tools."""
