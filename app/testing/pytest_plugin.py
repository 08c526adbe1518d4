"""Junction's pytest plugin (entry point ``pytest11``): makes the provider conformance kit and the
server helpers available to any package's tests. Importing it has no side effects."""
