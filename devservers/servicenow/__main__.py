"""``python -m devservers.servicenow``: the ServiceNow development server in the foreground (see
:mod:`devservers.servicenow.cli`)."""

from devservers.servicenow.cli import main

raise SystemExit(main())
