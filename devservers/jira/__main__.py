"""``python -m devservers.jira``: the Jira development server in the foreground (see :mod:`devservers.jira.cli`)."""

from devservers.jira.cli import main

raise SystemExit(main())
