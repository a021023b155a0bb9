"""The Note domain: entities, rules, errors, ports and use cases. Imports no outer layer."""
