"""One router per resource: problems, plans (with cases, responses and audit), health."""
