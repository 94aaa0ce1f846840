"""The command-line tools: aalbert-compile, aalbert-opt, aalbert-run."""
